/**
 * Mutable files on the grid: create, publish, retrieve, modify, check, repair.
 * docs/mutable-files.md describes the algorithms and guarantees.
 *
 * A version is encrypted under a key derived from the readkey and a fresh
 * salt, erasure-coded k-of-n (k = 1: every share is a full copy), and signed:
 * the signature covers the sequence number, the root of a hash tree over the
 * shares, the salt and the encoding parameters. Writes are test-and-set
 * against what the writer saw, so a lost race is always detected.
 */
import {
  bytesEqual,
  concatBytes,
  decodeSegment,
  encodeSegment,
  toHex,
  u32be,
} from "../codec/mod.ts";
import {
  aesCtr,
  fingerprintFromPublicKey,
  HashTree,
  mutableDataKey,
  mutableKeysFromSeed,
  randomBytes,
  sign,
  storageIndexFromFingerprint,
  taggedHash,
  verify,
  verifyLeaf,
} from "../crypto/mod.ts";
import {
  failedServers,
  GridError,
  NotEnoughServersError,
  RollbackError,
  UncoordinatedWriteError,
  UnrecoverableError,
} from "./errors.ts";
import {
  blockLength,
  CHECKSTRING_SIZE,
  MAX_HEADER_SIZE,
  type MutablePrefix,
  type MutableShareHeader,
  packPrefix,
  packShare,
  unpackShareHeader,
  validateEncoding,
} from "./mutable_share.ts";
import { shareVectors, testAndWrite } from "./mutable_write.ts";
import { gather, type GridServer, lateError, permuteServers, serverKey } from "./servers.ts";
import { GRID_TAGS } from "./tags.ts";

const ZERO_IV = new Uint8Array(16);
const CONCURRENCY = 32;
/** Largest mutable file contents accepted by publish. */
export const MAX_MUTABLE_SIZE = 64 * 1024 * 1024;

/** k-of-n, or "everywhere": k = 1 and one full share on every server in the list. */
export type MutableEncoding = { k: number; n: number } | "everywhere";
export const DEFAULT_MUTABLE_ENCODING: MutableEncoding = { k: 3, n: 10 };

/** What a writer holds: everything derived from the writecap's seed. */
export interface MutableWriteKeys {
  seed: Uint8Array;
  publicKey: Uint8Array;
  writekey: Uint8Array;
  readkey: Uint8Array;
  storageIndex: Uint8Array;
  fingerprint: Uint8Array;
}

/** What a reader holds. */
export interface MutableReadKeys {
  readkey: Uint8Array;
  fingerprint: Uint8Array;
}

/** What a verifier holds (check without decrypting). */
export interface MutableVerifyKeys {
  storageIndex: Uint8Array;
  fingerprint: Uint8Array;
}

export interface MutableContext {
  /** Servers in the order to use for this storage index (permuted ring). */
  servers: GridServer[];
  /** This node's master lease secret (32 bytes). */
  leaseSecret: Uint8Array;
}

export interface ShareSeen {
  shareNumber: number;
  /** The first CHECKSTRING_SIZE bytes as read (or fewer if the share is shorter). */
  checkstring: Uint8Array;
  /** Key of the version this share belongs to, when its header verified. */
  version?: string;
  problem?: string;
  header?: MutableShareHeader;
  /** The bytes read in the first round (a small share arrives whole). */
  head?: Uint8Array;
}

export interface ServerSeen {
  server: GridServer;
  shares: ShareSeen[];
  /** Set when the server could not be asked (or was late). */
  error?: string;
  /** A late server's answer, still on its way (a publish awaits it before writing there). */
  late?: Promise<ServerSeen>;
}

export interface VersionInfo {
  key: string;
  prefix: MutablePrefix;
  prefixBytes: Uint8Array;
  publicKey: Uint8Array;
  signature: Uint8Array;
  holders: { server: GridServer; share: ShareSeen }[];
}

export interface Servermap {
  storageIndex: Uint8Array;
  servers: ServerSeen[];
  /** Every validly signed version seen, newest first. */
  versions: VersionInfo[];
}

export function versionKey(p: { seqnum: number; rootHash: Uint8Array }): string {
  return `${p.seqnum}:${toHex(p.rootHash)}`;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Signature checks are cached per (key, prefix, signature): an "everywhere" version is verified once. */
const verifiedSignatures = new Map<string, boolean>();
async function verifySignature(
  h: { publicKey: Uint8Array; prefixBytes: Uint8Array; signature: Uint8Array },
): Promise<boolean> {
  const key = toHex(concatBytes(h.publicKey, h.prefixBytes, h.signature));
  const cached = verifiedSignatures.get(key);
  if (cached !== undefined) return cached;
  const ok = await verify(
    h.publicKey,
    taggedHash(GRID_TAGS.mutableSignature, h.prefixBytes),
    h.signature,
  );
  if (verifiedSignatures.size > 4096) verifiedSignatures.clear();
  verifiedSignatures.set(key, ok);
  return ok;
}

function leafHash(shareNumber: number, blockHash: Uint8Array): Uint8Array {
  return taggedHash(GRID_TAGS.mutableShareLeaf, u32be(shareNumber), blockHash);
}

function blockHash(block: Uint8Array): Uint8Array {
  return taggedHash(GRID_TAGS.mutableBlock, block);
}

/**
 * Ask every server which shares of the slot it holds and which versions they
 * are; verify each header's fingerprint and signature.
 */
export async function mapUpdate(
  ctx: MutableContext,
  keys: MutableVerifyKeys,
  opts: MapOptions = {},
): Promise<Servermap> {
  return (await mapUpdateMany(ctx, [keys], opts))[0];
}

/** Slots per batch-read request (servers accept at least this many). */
const BATCH_SLOTS = 1000;

export interface MapOptions {
  /** Bytes read from the front of each share (default 4096); null reads whole shares. */
  initialReadSize?: number | null;
  /**
   * Wait for every server (check, repair). Otherwise the map is complete once
   * every slot's newest version seen is recoverable from the servers that
   * answered (and at least half of them have), plus a grace period
   * (stragglerGrace): a server still silent then is entered as late — like a
   * down server, with its answer still arriving in `ServerSeen.late`.
   */
  waitAll?: boolean;
}

/** Whether the answers so far hold a recoverable newest version of every slot. */
function enoughForSlots(answered: ServerSeen[][], slots: number, servers: number): boolean {
  const ok = answered.filter((a) => a.length > 0 && !a[0].error);
  if (ok.length * 2 < servers) return false;
  for (let j = 0; j < slots; j++) {
    let newest: MutableShareHeader | undefined;
    const byVersion = new Map<string, Set<number>>();
    for (const a of ok) {
      for (const sh of a[j].shares) {
        if (!sh.header || !sh.version) continue;
        if (!newest || sh.header.prefix.seqnum > newest.prefix.seqnum) newest = sh.header;
        byVersion.set(sh.version, (byVersion.get(sh.version) ?? new Set()).add(sh.shareNumber));
      }
    }
    if (!newest) continue; // nothing anywhere among half the servers: an empty slot
    const best = Math.max(
      ...[...byVersion].filter(([v]) => Number(v.split(":")[0]) === newest!.prefix.seqnum)
        .map(([, set]) => set.size),
    );
    if (best < newest.prefix.k) return false;
  }
  return true;
}

/**
 * mapUpdate for many slots at once: one batch-read per server (per 1000
 * slots) covering all of them. `initialReadSize` null reads whole shares, so
 * small objects need no second round trip. Unless `waitAll`, slow servers are
 * left behind once the others are enough (see MapOptions).
 */
export async function mapUpdateMany(
  ctx: MutableContext,
  slots: MutableVerifyKeys[],
  opts: MapOptions = {},
): Promise<Servermap[]> {
  const size = opts.initialReadSize === null
    ? null
    : Math.max(opts.initialReadSize ?? 4096, MAX_HEADER_SIZE);
  const ask = async (server: GridServer): Promise<ServerSeen[]> => {
    const found = new Map<string, { share: number; data: Uint8Array[] }[]>();
    try {
      for (let i = 0; i < slots.length; i += BATCH_SLOTS) {
        const chunk = slots.slice(i, i + BATCH_SLOTS);
        const res = await server.storage.batchRead({
          slots: chunk.map((s) => ({
            storageIndex: s.storageIndex,
            shares: null,
            ranges: [{ offset: 0, size }],
          })),
        });
        for (const slot of res.slots) found.set(toHex(slot.storageIndex), slot.shares);
      }
    } catch (e) {
      return slots.map(() => ({ server, shares: [], error: describe(e) }));
    }
    return await Promise.all(slots.map(async ({ storageIndex, fingerprint }) => {
      const shares: ShareSeen[] = [];
      for (const sh of found.get(toHex(storageIndex)) ?? []) {
        shares.push(await examineShare(sh.share, sh.data[0] ?? new Uint8Array(0), fingerprint));
      }
      return { server, shares };
    }));
  };
  const t0 = performance.now();
  const g = await gather(ctx.servers, ask, {
    limit: CONCURRENCY,
    enough: opts.waitAll ? undefined : (answered) =>
      enoughForSlots(
        answered.map((a) => (a.ok ? a.value : [])),
        slots.length,
        ctx.servers.length,
      ),
  });
  const waited = performance.now() - t0;
  const perServer: ServerSeen[][] = ctx.servers.map((server, i) => {
    const a = g.answers[i];
    if (a === undefined) {
      // Late: treated as down, but its answer is kept for a publish that writes to it.
      const late = g.rest.then((all) => {
        const x = all[i];
        return x.ok ? x.value : slots.map(() => ({ server, shares: [], error: describe(x.error) }));
      });
      late.catch(() => {});
      return slots.map((_, j) => ({
        server,
        shares: [],
        error: lateError(waited),
        late: late.then((v) => v[j]),
      }));
    }
    return a.ok ? a.value : slots.map(() => ({ server, shares: [], error: describe(a.error) }));
  });
  return slots.map(({ storageIndex }, j) =>
    buildServermap(storageIndex, perServer.map((seen) => seen[j]))
  );
}

function buildServermap(storageIndex: Uint8Array, seen: ServerSeen[]): Servermap {
  const versions = new Map<string, VersionInfo>();
  for (const s of seen) {
    for (const share of s.shares) {
      if (!share.version || !share.header) continue;
      let v = versions.get(share.version);
      if (!v) {
        v = {
          key: share.version,
          prefix: share.header.prefix,
          prefixBytes: share.header.prefixBytes,
          publicKey: share.header.publicKey,
          signature: share.header.signature,
          holders: [],
        };
        versions.set(share.version, v);
      }
      v.holders.push({ server: s.server, share });
    }
  }
  const sorted = [...versions.values()].sort((a, b) =>
    b.prefix.seqnum - a.prefix.seqnum || compareHex(b.key, a.key)
  );
  return { storageIndex, servers: seen, versions: sorted };
}

function compareHex(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function examineShare(
  shareNumber: number,
  head: Uint8Array,
  fingerprint: Uint8Array,
): Promise<ShareSeen> {
  const seen: ShareSeen = { shareNumber, checkstring: head.slice(0, CHECKSTRING_SIZE), head };
  try {
    const header = unpackShareHeader(head);
    if (header.shareNumber !== shareNumber) {
      seen.problem = `share claims number ${header.shareNumber} but is stored as ${shareNumber}`;
    } else if (!bytesEqual(fingerprintFromPublicKey(header.publicKey), fingerprint)) {
      seen.problem =
        "share belongs to another object (public key does not match the cap's fingerprint)";
    } else if (!(await verifySignature(header))) {
      seen.problem = "share signature is invalid";
    } else {
      seen.header = header;
      seen.version = versionKey(header.prefix);
    }
  } catch (e) {
    seen.problem = `malformed share: ${describe(e)}`;
  }
  return seen;
}

export interface RetrieveResult {
  contents: Uint8Array;
  seqnum: number;
  version: VersionInfo;
  servermap: Servermap;
  /** Shares that were found bad while reading (also reported to their servers). */
  problems: { serverId: Uint8Array; shareNumber: number; problem: string }[];
}

/** Rebuild and decrypt one version, verifying every block against the signed root. */
async function recoverVersion(
  map: Servermap,
  version: VersionInfo,
  readkey: Uint8Array,
  problems: RetrieveResult["problems"],
): Promise<Uint8Array | null> {
  const { k, n, dataLength, rootHash, salt } = version.prefix;
  const blen = blockLength(dataLength, k);
  const good = new Map<number, Uint8Array>();
  /** Fetch (unless it arrived whole) and verify one holder's block; true when it is good. */
  const fetchBlock = async ({ server, share }: VersionInfo["holders"][number]) => {
    const header = share.header!;
    let block: Uint8Array;
    try {
      const head = share.head!;
      if (head.length >= header.blockOffset + blen) {
        block = head.subarray(header.blockOffset, header.blockOffset + blen);
        if (head.length > header.blockOffset + blen) {
          throw new GridError("share is longer than its version says");
        }
      } else {
        block = await server.storage.readMutable(
          map.storageIndex,
          share.shareNumber,
          header.blockOffset,
          blen,
        );
        if (block.length !== blen) {
          throw new GridError(`block is ${block.length} bytes, expected ${blen}`);
        }
      }
    } catch (e) {
      problems.push({
        serverId: server.serverId,
        shareNumber: share.shareNumber,
        problem: describe(e),
      });
      return;
    }
    const leaf = leafHash(share.shareNumber, blockHash(block));
    if (!verifyLeaf(rootHash, n, share.shareNumber, leaf, header.neededHashes)) {
      const problem = "block does not match the signed share hash tree";
      problems.push({ serverId: server.serverId, shareNumber: share.shareNumber, problem });
      server.storage.reportCorruption("mutable", map.storageIndex, share.shareNumber, problem)
        .catch(() => {});
      return;
    }
    if (good.size < k) good.set(share.shareNumber, block);
  };
  // Prefer distinct share numbers; read k holders' blocks in parallel, and
  // more when some fail. A block still on its way when the others have
  // arrived (plus a grace period) is given up on like a failed one.
  const tried = new Set<number>();
  let next = 0;
  while (good.size < k) {
    const batch: VersionInfo["holders"] = [];
    const numbers = new Set<number>();
    for (; next < version.holders.length && good.size + batch.length < k; next++) {
      const h = version.holders[next];
      const sh = h.share.shareNumber;
      if (good.has(sh) || numbers.has(sh)) continue;
      numbers.add(sh);
      batch.push(h);
    }
    if (batch.length === 0) {
      // Every holder of a new share number was tried: retry holders skipped as duplicates.
      const rest = version.holders.filter((h, i) =>
        !tried.has(i) && !good.has(h.share.shareNumber)
      );
      if (rest.length === 0) break;
      batch.push(...rest.slice(0, k - good.size));
    }
    for (const h of batch) tried.add(version.holders.indexOf(h));
    const t0 = performance.now();
    const g = await gather(batch, fetchBlock, {
      enough: (answered) => batch.length > 1 && answered.length >= batch.length - 1,
    });
    for (const i of g.late) {
      problems.push({
        serverId: batch[i].server.serverId,
        shareNumber: batch[i].share.shareNumber,
        problem: lateError(performance.now() - t0),
      });
    }
  }
  if (good.size < k) return null;
  const ciphertext = k === 1 ? good.values().next().value! : decodeSegment(
    [...good].slice(0, k).map(([index, data]) => ({ index, data })),
    k,
    n,
    dataLength,
  );
  return await aesCtr(mutableDataKey(readkey, salt), ZERO_IV, ciphertext.subarray(0, dataLength));
}

/**
 * Find and return the newest recoverable version. With `minSeqnum`, a newest
 * recoverable version older than that is refused (RollbackError).
 */
export async function retrieve(
  ctx: MutableContext,
  keys: MutableReadKeys,
  opts: { minSeqnum?: number; servermap?: Servermap; initialReadSize?: number | null } = {},
): Promise<RetrieveResult> {
  const storageIndex = storageIndexFromFingerprint(keys.fingerprint);
  const map = opts.servermap ??
    await mapUpdate(ctx, { storageIndex, fingerprint: keys.fingerprint }, opts);
  const problems: RetrieveResult["problems"] = [];
  for (const s of map.servers) {
    for (const sh of s.shares) {
      if (sh.problem) {
        problems.push({
          serverId: s.server.serverId,
          shareNumber: sh.shareNumber,
          problem: sh.problem,
        });
      }
    }
  }
  for (const version of map.versions) {
    const contents = await recoverVersion(map, version, keys.readkey, problems);
    if (contents === null) continue;
    if (opts.minSeqnum !== undefined && version.prefix.seqnum < opts.minSeqnum) {
      throw new RollbackError(
        `newest version found is ${version.prefix.seqnum}, older than version ${opts.minSeqnum} seen before; ` +
          "the servers reached may be stale or malicious — try again when others are reachable",
      );
    }
    return { contents, seqnum: version.prefix.seqnum, version, servermap: map, problems };
  }
  const reachable = map.servers.filter((s) => !s.error).length;
  if (map.versions.length === 0) {
    throw new UnrecoverableError(
      `no valid share of this object on the ${reachable} reachable of ${map.servers.length} servers asked`,
    );
  }
  throw new UnrecoverableError(
    `found ${map.versions.length} version(s) but not enough valid shares to rebuild any ` +
      `(${reachable} of ${map.servers.length} servers reachable)`,
  );
}

export interface PublishResult {
  seqnum: number;
  rootHash: Uint8Array;
  k: number;
  n: number;
  /** Servers that accepted their shares. */
  placed: { serverId: Uint8Array; shares: number[] }[];
  failures: { serverId: Uint8Array; error: string }[];
}

export interface EncodedVersion {
  prefix: Uint8Array;
  signature: Uint8Array;
  tree: HashTree;
  /** The block of share i. */
  block(i: number): Uint8Array;
  /** The whole share i. */
  share(i: number): Uint8Array;
}

/** Encrypt, erasure-code, hash and sign one version (deterministic for a given salt). */
export async function encodeVersion(
  keys: MutableWriteKeys,
  contents: Uint8Array,
  seqnum: number,
  salt: Uint8Array,
  k: number,
  n: number,
): Promise<EncodedVersion> {
  validateEncoding(k, n);
  const ciphertext = await aesCtr(mutableDataKey(keys.readkey, salt), ZERO_IV, contents);
  const blocks = k === 1 ? null : encodeSegment(ciphertext, k, n);
  const block = (i: number) => blocks ? blocks[i] : ciphertext;
  const sharedHash = blocks ? null : blockHash(ciphertext);
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < n; i++) leaves.push(leafHash(i, sharedHash ?? blockHash(blocks![i])));
  const tree = new HashTree(leaves);
  const prefix = packPrefix({
    seqnum,
    rootHash: tree.root,
    salt,
    k,
    n,
    dataLength: contents.length,
  });
  const signature = await sign(keys.seed, taggedHash(GRID_TAGS.mutableSignature, prefix));
  return {
    prefix,
    signature,
    tree,
    block,
    share: (i) => packShare(prefix, keys.publicKey, signature, i, tree.neededHashes(i), block(i)),
  };
}

/** Encode, sign and write a new version with test-and-set against `map`. */
export async function publish(
  ctx: MutableContext,
  keys: MutableWriteKeys,
  contents: Uint8Array,
  encoding: MutableEncoding,
  map: Servermap | null,
): Promise<PublishResult> {
  const servers = ctx.servers;
  if (contents.length > MAX_MUTABLE_SIZE) {
    throw new GridError(
      `mutable contents of ${contents.length} bytes exceed the ${MAX_MUTABLE_SIZE}-byte limit`,
    );
  }
  if (servers.length === 0) {
    throw new NotEnoughServersError("no storage servers are known; cannot publish");
  }
  const { k, n } = encoding === "everywhere" ? { k: 1, n: servers.length } : encoding;
  validateEncoding(k, n);
  const seqnum = (map?.versions.reduce((m, v) => Math.max(m, v.prefix.seqnum), 0) ?? 0) + 1;
  const version = await encodeVersion(keys, contents, seqnum, randomBytes(16), k, n);
  const { tree } = version;
  // Share i goes to servers[i mod S].
  const assigned = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const key = serverKey(servers[i % servers.length].serverId);
    const list = assigned.get(key) ?? [];
    list.push(i);
    assigned.set(key, list);
  }
  const seenBy = new Map<string, ServerSeen>();
  for (const s of map?.servers ?? []) seenBy.set(serverKey(s.server.serverId), s);
  const placed: PublishResult["placed"] = [];
  const failures: PublishResult["failures"] = [];
  const conflicts: string[] = [];

  const targets = servers.filter((s) => assigned.has(serverKey(s.serverId)));
  const base = seqnum - 1;
  const writeTo = async (server: GridServer): Promise<boolean> => {
    const key = serverKey(server.serverId);
    const mine = assigned.get(key)!;
    let seen = seenBy.get(key);
    if (seen?.late) {
      // The map went on without this server: its answer decides what to test against.
      seen = await seen.late;
      const newer = seen.shares.find((sh) => sh.header && sh.header.prefix.seqnum > base);
      if (newer) {
        conflicts.push(
          `server ${toHex(server.serverId).slice(0, 8)} (late to answer) holds version ${
            newer.header!.prefix.seqnum
          }, newer than the one this write builds on`,
        );
        return false;
      }
    }
    const seenShares = new Map((seen?.shares ?? []).map((s) => [s.shareNumber, s.checkstring]));
    const vectors = shareVectors(
      mine.map((share) => ({
        share,
        data: version.share(share),
        specimen: seenShares.get(share) ?? new Uint8Array(0),
      })),
      // Shares from an older layout: removed so the server holds only the new version.
      [...seenShares].filter(([share]) => !mine.includes(share)).map(([share, specimen]) => ({
        share,
        specimen,
      })),
    );
    try {
      const res = await testAndWrite(ctx.leaseSecret, keys, server, vectors, [
        { offset: 0, size: CHECKSTRING_SIZE },
      ]);
      // Anything there we did not see is a surprise: another writer got in.
      for (const r of res.reads) {
        const expected = seenShares.get(r.share);
        if (expected === undefined || !bytesEqual(expected, r.data[0] ?? new Uint8Array(0))) {
          conflicts.push(
            `server ${
              toHex(server.serverId).slice(0, 8)
            } held an unexpected version of share ${r.share}`,
          );
        }
      }
      if (!res.success) {
        conflicts.push(
          `server ${
            toHex(server.serverId).slice(0, 8)
          } refused: its shares changed since they were read`,
        );
        return false;
      }
      placed.push({ serverId: server.serverId, shares: mine });
      return true;
    } catch (e) {
      failures.push({ serverId: server.serverId, error: describe(e) });
      return false;
    }
  };
  // Stragglers: once the servers that answered hold at least k distinct shares
  // (and at least half of the targets answered), the rest get a grace period;
  // a write still unanswered then goes on in the background and counts as failed.
  const t0 = performance.now();
  const g = await gather(targets, writeTo, {
    limit: CONCURRENCY,
    enough: (answered) =>
      answered.length * 2 >= targets.length &&
      new Set(placed.flatMap((p) => p.shares)).size >= k,
  });
  for (const i of g.late) {
    failures.push({ serverId: targets[i].serverId, error: lateError(performance.now() - t0) });
  }
  // A late write that finishes later changes nothing of this result.
  const placedNow = [...placed];
  const failedNow = [...failures];
  if (conflicts.length) {
    throw new UncoordinatedWriteError(
      `another writer changed this object during publish of version ${seqnum}: ${
        conflicts.slice(0, 3).join("; ")
      }`,
    );
  }
  const distinct = new Set(placedNow.flatMap((p) => p.shares)).size;
  if (distinct < k) {
    throw new NotEnoughServersError(
      `only ${distinct} of ${n} shares were stored (need at least ${k}); ` +
        failedServers(failedNow.map((f) => f.error)),
    );
  }
  return { seqnum, rootHash: tree.root, k, n, placed: placedNow, failures: failedNow };
}

/**
 * Create a new mutable object; returns its keys (the seed is the writecap).
 * `contents` may depend on the new keys (a directory encrypts child writecaps
 * under its own writekey). `ctx.servers` is reordered on the new storage index's ring.
 */
export async function createMutable(
  ctx: MutableContext,
  contents: Uint8Array | ((keys: MutableWriteKeys) => Promise<Uint8Array>),
  encoding: MutableEncoding = DEFAULT_MUTABLE_ENCODING,
): Promise<{ keys: MutableWriteKeys; result: PublishResult }> {
  const keys = await mutableKeysFromSeed(randomBytes(32));
  const data = typeof contents === "function" ? await contents(keys) : contents;
  const placed = { ...ctx, servers: permuteServers(keys.storageIndex, ctx.servers) };
  const result = await publish(placed, keys, data, encoding, null);
  return { keys, result };
}

/** Replace the contents: map, then publish seqnum = highest seen + 1. */
export async function overwrite(
  ctx: MutableContext,
  keys: MutableWriteKeys,
  contents: Uint8Array,
  encoding: MutableEncoding = DEFAULT_MUTABLE_ENCODING,
): Promise<PublishResult> {
  const map = await mapUpdate(ctx, keys);
  return await publish(ctx, keys, contents, encoding, map);
}

export interface ModifyOptions {
  encoding?: MutableEncoding;
  maxAttempts?: number;
  /** Refuse to build on a version older than this (rollback protection). */
  minSeqnum?: number;
}

/**
 * Read–modify–write with retry. `fn` gets the current contents (null when the
 * object has no version yet) and returns new contents, or null for "no change".
 * On an uncoordinated write it re-reads and calls `fn` again, with backoff.
 */
export async function modify(
  ctx: MutableContext,
  keys: MutableWriteKeys,
  fn: (old: Uint8Array | null, seqnum: number) => Uint8Array | null | Promise<Uint8Array | null>,
  opts: ModifyOptions = {},
): Promise<PublishResult | null> {
  const attempts = opts.maxAttempts ?? 8;
  let last: unknown;
  // What this call last read, once one of its publishes has collided with another writer's.
  let collided: { contents: Uint8Array | null; seqnum: number } | null = null;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const map = await mapUpdate(ctx, keys);
    let old: Uint8Array | null = null;
    let seqnum = 0;
    if (map.versions.length) {
      try {
        const r = await retrieve(ctx, keys, { servermap: map, minSeqnum: opts.minSeqnum });
        old = r.contents;
        seqnum = r.seqnum;
      } catch (e) {
        // Uncoordinated writers can leave every version short of k shares (each server
        // holding another writer's attempt): nothing is readable, and every writer would fail
        // from now on. One that collided here still holds what it last read: it builds on that
        // again and publishes it above every version seen, so the object is readable again and
        // the other writers' retries apply their changes on top of it.
        if (!(e instanceof UnrecoverableError) || collided === null) throw e;
        old = collided.contents;
        seqnum = collided.seqnum;
      }
    } else if (opts.minSeqnum !== undefined && opts.minSeqnum > 0) {
      // No version at all where one at least this new was seen: never start over from empty.
      throw new RollbackError(
        `no version found, though version ${opts.minSeqnum} was seen before; ` +
          "the servers reached may be empty, stale or malicious — try again when others are reachable",
      );
    }
    const next = await fn(old, seqnum);
    if (next === null) return null;
    try {
      return await publish(ctx, keys, next, opts.encoding ?? DEFAULT_MUTABLE_ENCODING, map);
    } catch (e) {
      if (!(e instanceof UncoordinatedWriteError)) throw e;
      last = e;
      collided = { contents: old, seqnum };
      const delay = Math.min(2000, 20 * 2 ** attempt) * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  throw new UncoordinatedWriteError(
    `gave up after ${attempts} attempts: other writers kept changing this object (${
      describe(last)
    })`,
  );
}

export interface CheckResult {
  storageIndex: Uint8Array;
  newest: { seqnum: number; rootHash: Uint8Array; k: number; n: number } | null;
  recoverable: boolean;
  /** Every server in the list holds a valid share of the newest version. */
  healthy: boolean;
  servers: {
    serverId: Uint8Array;
    nickname?: string;
    error?: string;
    shares: { shareNumber: number; seqnum?: number; newest: boolean; problem?: string }[];
  }[];
}

/** Report, per server, which version each share is (verifying whole blocks when `verifyBlocks`). */
export async function check(
  ctx: MutableContext,
  keys: MutableVerifyKeys,
  /** Judges health from the servermap instead (e.g. mutableHealth with the node's `happy`). */
  judge?: (map: Servermap) => boolean,
): Promise<CheckResult> {
  const map = await mapUpdate(ctx, keys, { waitAll: true });
  const newest = map.versions[0] ?? null;
  const newestDistinct = newest ? new Set(newest.holders.map((h) => h.share.shareNumber)).size : 0;
  const servers = map.servers.map((s) => ({
    serverId: s.server.serverId,
    nickname: s.server.nickname,
    error: s.error,
    shares: s.shares.map((sh) => ({
      shareNumber: sh.shareNumber,
      seqnum: sh.header?.prefix.seqnum,
      newest: newest !== null && sh.version === newest.key,
      problem: sh.problem,
    })),
  }));
  const healthy = judge
    ? judge(map)
    : newest !== null && servers.every((s) => s.shares.some((sh) => sh.newest));
  return {
    storageIndex: map.storageIndex,
    newest: newest
      ? {
        seqnum: newest.prefix.seqnum,
        rootHash: newest.prefix.rootHash,
        k: newest.prefix.k,
        n: newest.prefix.n,
      }
      : null,
    recoverable: newest !== null && newestDistinct >= newest.prefix.k,
    healthy,
    servers,
  };
}

/**
 * Bring every server in the list to the newest version: when any lacks it,
 * republish the newest contents as a new version over the current list.
 */
export async function repair(
  ctx: MutableContext,
  keys: MutableWriteKeys,
  encoding: MutableEncoding = DEFAULT_MUTABLE_ENCODING,
): Promise<{ repaired: boolean; before: CheckResult; result?: PublishResult }> {
  const before = await check(ctx, keys);
  if (before.healthy) return { repaired: false, before };
  const result = await modify(ctx, keys, (old) => old ?? new Uint8Array(0), { encoding });
  return { repaired: true, before, result: result! };
}

/** Keys for a writer from a writecap's seed. */
export function writeKeysFromSeed(seed: Uint8Array): Promise<MutableWriteKeys> {
  return mutableKeysFromSeed(seed);
}
