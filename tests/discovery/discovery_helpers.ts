/** Shared by the discovery convergence tests: reading what real servers and clients hold. */
import { ClientPool } from "../../lib/discovery/mod.ts";
import { Grid, mapUpdate, ServerList, writeKeysFromSeed } from "../../lib/grid/mod.ts";
import {
  type Cap,
  parseCap,
  randomBytes,
  writeEnabler,
  writeEnablerMaster,
} from "../../lib/crypto/mod.ts";
import { parseStorageUrl } from "../../lib/storage/mod.ts";
import { shoalOk } from "../helpers/joined_grid.ts";

export const testOpts = { sanitizeResources: false, sanitizeOps: false };

export interface ServerRow {
  nickname: string;
  petname: string;
  serverId: string;
  storageUrls: string[];
  gsaSeqnum: number;
}

/** `client servers --json` (with --refresh unless `refresh` is false). */
export async function clientServers(dir: string, refresh = true): Promise<ServerRow[]> {
  return JSON.parse(
    await shoalOk([
      "client",
      "servers",
      "--dir",
      dir,
      "--json",
      "--show-secrets",
      ...(refresh ? ["--refresh"] : []),
    ]),
  );
}

/** The servers recorded in a node directory (client, server or operator), without any I/O. */
export async function recorded(dir: string): Promise<ServerRow[]> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/private/servers.json`)).servers;
  } catch {
    return [];
  }
}

export async function waitFor(
  what: string,
  fn: () => Promise<boolean>,
  timeoutMs = 20_000,
  everyMs = 200,
): Promise<number> {
  const start = Date.now();
  const end = start + timeoutMs;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return Date.now() - start;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}

/** Does server `url` alone hold a valid copy of the newest version (as `all` hold it) of `cap`? */
export async function holds(url: string, cap: string, all: string[]): Promise<boolean> {
  const pool = new ClientPool({ timeoutMs: 3000 });
  try {
    const mk = (urls: string[]) =>
      new Grid({
        servers: new ServerList(urls.map((u) => pool.server(parseStorageUrl(u)))),
        leaseSecret: randomBytes(32),
      });
    const everywhere = await mk(all).checkMutable(cap);
    const alone = await mk([url]).readMutable(cap);
    return everywhere.newest !== null && alone.seqnum === everywhere.newest.seqnum;
  } catch {
    return false;
  } finally {
    pool.close();
  }
}

/** Newest sequence number of a mutable object over `urls` (null when none holds it). */
export async function newestSeqnum(cap: string, urls: string[]): Promise<number | null> {
  const pool = new ClientPool({ timeoutMs: 3000 });
  try {
    const g = new Grid({
      servers: new ServerList(urls.map((u) => pool.server(parseStorageUrl(u)))),
      leaseSecret: randomBytes(32),
    });
    return (await g.checkMutable(cap)).newest?.seqnum ?? null;
  } finally {
    pool.close();
  }
}

/**
 * As the writer of `writecap`, delete every share of it from the server at `url` (a
 * test-and-set write that empties them): models a server that never received them.
 */
export async function dropShares(url: string, writecap: string): Promise<void> {
  const pool = new ClientPool({ timeoutMs: 3000 });
  try {
    const u = parseStorageUrl(url);
    const server = pool.server(u);
    const seed = (parseCap(writecap.trim()) as Extract<Cap, { kind: "mutable-write" }>).seed;
    const keys = await writeKeysFromSeed(seed);
    const map = await mapUpdate({ servers: [server], leaseSecret: randomBytes(32) }, keys);
    const shares = map.servers[0].shares;
    if (!shares.length) return;
    const res = await server.storage.readTestWrite(keys.storageIndex, {
      writeEnabler: writeEnabler(writeEnablerMaster(keys.writekey), u.pin),
      leaseRenew: randomBytes(32),
      leaseCancel: randomBytes(32),
    }, {
      testWriteVectors: shares.map((s) => ({
        share: s.shareNumber,
        test: [{ offset: 0, size: s.checkstring.length, specimen: s.checkstring }],
        write: [],
        newLength: 0,
      })),
      readVector: [],
    });
    if (!res.success) throw new Error("dropShares: the shares changed meanwhile");
  } finally {
    pool.close();
  }
}
