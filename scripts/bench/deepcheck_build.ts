/**
 * Building the deep-check bench's tree quickly (scripts/bench/deepcheck.ts).
 * Uploading 10,000 files over HTTPS is 200,000 requests to 10 servers and
 * took minutes on a loaded 2-core machine, longer than everything it is there
 * to measure. So the tree is written into the running servers' share stores
 * directly: a ShareStore opened in this process on each server's own store
 * directory, behind a StorageApi that calls it without HTTP, with the
 * server's real identity (so placement and write enablers are what an upload
 * over the network would have produced). The files on disk are the same the
 * protocol writes (docs/storage-node.md §4). The servers are idle meanwhile
 * and have read none of these storage indexes, so nothing they cached goes
 * stale. The check itself then runs over HTTPS like any client's.
 */
import type { GridServer, StorageApi } from "../../lib/grid/mod.ts";
import { ShareStore, type StorageUrl } from "../../lib/storage/mod.ts";

/** Largest batch-read answer, as the servers' default max_body_size. */
const MAX_READ = 64 * 1024 * 1024;

function readShare(
  store: ShareStore,
  kind: "immutable" | "mutable",
  si: Uint8Array,
  n: number,
  offset = 0,
  size?: number,
): Promise<Uint8Array> {
  const o = store.openShare(kind, si, n);
  if (!o) return Promise.reject(new Error(`no ${kind} share ${n}`));
  try {
    const len = Math.max(0, Math.min(size ?? Infinity, o.size - offset));
    const buf = new Uint8Array(len);
    o.file.seekSync(offset, Deno.SeekMode.Start);
    let got = 0;
    while (got < len) {
      const r = o.file.readSync(buf.subarray(got));
      if (!r) break;
      got += r;
    }
    return Promise.resolve(buf.subarray(0, got));
  } finally {
    o.file.close();
  }
}

/** The calls an upload and a directory publish make, straight onto `store`. */
function directApi(store: ShareStore): StorageApi {
  const unused = () => Promise.reject(new Error("not used while building the bench tree"));
  return {
    allocate: (si, s, req) =>
      store.allocate(
        si,
        { upload: s.upload, renew: s.leaseRenew, cancel: s.leaseCancel },
        req.shareNumbers,
        req.allocatedSize,
      ),
    upload: async (si, n, secret, offset, data) => {
      const r = await store.writeImmutable(si, n, secret, offset, data.length, data);
      return { required: r.required };
    },
    abortUpload: (si, n, secret) => store.abortUpload(si, n, secret),
    listImmutable: (si) => store.listImmutable(si),
    listMutable: (si) => store.listMutable(si),
    readImmutable: (si, n, offset, size) => readShare(store, "immutable", si, n, offset, size),
    readMutable: (si, n, offset, size) => readShare(store, "mutable", si, n, offset, size),
    readTestWrite: (si, s, req) =>
      store.readTestWrite(
        si,
        { writeEnabler: s.writeEnabler, renew: s.leaseRenew, cancel: s.leaseCancel },
        req,
      ),
    batchRead: (req) => store.batchRead(req, MAX_READ),
    batchList: unused,
    reportCorruption: unused,
    renewLease: unused,
    version: unused,
  };
}

/** Grid servers writing straight into the stores at `roots` (the servers at `urls`). */
export async function directServers(urls: StorageUrl[], roots: string[]): Promise<GridServer[]> {
  return await Promise.all(urls.map(async (u, i) => ({
    serverId: u.pin,
    nickname: `s${i}`,
    storage: directApi(await ShareStore.open({ root: roots[i] })),
  })));
}
