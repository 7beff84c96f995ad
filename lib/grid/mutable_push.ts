/**
 * Place the newest version of an "everywhere" (k = 1) mutable object on servers that lack
 * it, without writing a new version: the writer re-encodes the same contents with the same
 * salt and sequence number (encoding is deterministic for a given salt, and Ed25519
 * signatures are deterministic), checks that the result has the signed root hash, and sends
 * each lacking server one of that version's share numbers that no server answering holds.
 *
 * This is what keeps a server that refused a share (a full disk) or was down from making
 * its writer sign version after version: it gets the same version again, later.
 * docs/discovery.md §7 ("No republish storm").
 */
import { bytesEqual } from "../codec/mod.ts";
import {
  encodeVersion,
  mapUpdate,
  type MutableContext,
  type MutableWriteKeys,
  retrieve,
} from "./mutable.ts";
import { shareVectors, testAndWrite } from "./mutable_write.ts";
import { type GridServer, serverKey } from "./servers.ts";

export interface PushResult {
  /** The version placed (null when the object has no recoverable version). */
  seqnum: number | null;
  placed: Uint8Array[];
  failures: { serverId: Uint8Array; error: string }[];
  /** Servers that could not be given a share: every share number of the version is taken. */
  noRoom: Uint8Array[];
}

/**
 * Give each server of `targets` (all in `ctx.servers`) a share of the newest version, when
 * it holds none. Servers in `ctx.servers` are read to learn which share numbers are held.
 */
export async function pushNewestVersion(
  ctx: MutableContext,
  keys: MutableWriteKeys,
  targets: GridServer[],
): Promise<PushResult> {
  const map = await mapUpdate(ctx, keys, { initialReadSize: null });
  const r = await retrieve(ctx, keys, { servermap: map });
  const { seqnum, salt, k, n, rootHash } = r.version.prefix;
  const result: PushResult = { seqnum, placed: [], failures: [], noRoom: [] };
  if (k !== 1) throw new Error("only a k = 1 (everywhere) version can be pushed as it is");
  const version = await encodeVersion(keys, r.contents, seqnum, salt, k, n);
  if (!bytesEqual(version.tree.root, rootHash)) {
    throw new Error("the newest version does not re-encode to its signed root hash");
  }
  const held = new Set(r.version.holders.map((h) => h.share.shareNumber));
  const holdsNewest = new Set(r.version.holders.map((h) => serverKey(h.server.serverId)));
  const free: number[] = [];
  for (let i = 0; i < n; i++) if (!held.has(i)) free.push(i);
  const seenBy = new Map(map.servers.map((s) => [serverKey(s.server.serverId), s]));
  await Promise.all(targets.map(async (server) => {
    const key = serverKey(server.serverId);
    if (holdsNewest.has(key)) return;
    const shnum = free.shift();
    if (shnum === undefined) {
      result.noRoom.push(server.serverId);
      return;
    }
    const seen = seenBy.get(key)?.shares ?? [];
    const vectors = shareVectors(
      [{
        share: shnum,
        data: version.share(shnum),
        specimen: seen.find((s) => s.shareNumber === shnum)?.checkstring ?? new Uint8Array(0),
      }],
      seen.filter((s) => s.shareNumber !== shnum).map((s) => ({
        share: s.shareNumber,
        specimen: s.checkstring,
      })),
    );
    try {
      const res = await testAndWrite(ctx.leaseSecret, keys, server, vectors);
      if (res.success) result.placed.push(server.serverId);
      else {
        result.failures.push({
          serverId: server.serverId,
          error: "its shares changed since they were read",
        });
      }
    } catch (e) {
      result.failures.push({ serverId: server.serverId, error: (e as Error).message });
    }
  }));
  return result;
}
