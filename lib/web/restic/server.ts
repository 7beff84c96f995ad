/**
 * restic's REST backend, protocol version 2 (the `rest:` backend of restic), over the
 * file-system API. docs/restic.md is the description.
 *
 * Layout under the served directory, as restic's own local backend lays out a repository:
 *
 *   config                 the repository config
 *   keys/ID  locks/ID  snapshots/ID  index/ID
 *   data/XX/ID             packs, sharded by the first two hex digits of ID
 *
 * Every object is an immutable file (restic names objects by the hash of their contents).
 * Shards of data/ are made on first use. Concurrent uploads into one directory go through
 * lib/fs, whose read–modify–write never loses an entry.
 */
import { FsError, type FsNode, nodeOf, ShoalFs } from "../../fs/mod.ts";
import { formatCap, parseCap, readcapOf } from "../../crypto/mod.ts";
import { mapLimit } from "../../grid/mod.ts";
import { type JournalEntry, journalId, LinkJournal } from "./journal.ts";
import { HttpError, parseRange } from "../api.ts";
import { basicAuthOk, crossSite, statusOf } from "../frontend.ts";

export interface ResticOptions {
  fs: ShoalFs;
  user: string;
  password: string;
  /**
   * Where the link journal lives (NODE/private/restic-journal): a POST is then answered once
   * its object is on the grid and journalled, before the directory publish (journal.ts).
   * Without it every POST and DELETE waits for its directory publish.
   */
  journalDir?: string;
  log?: (line: string) => void;
}

export const RESTIC_V2 = "application/vnd.x.restic.rest.v2";
const TYPES = new Set(["data", "keys", "locks", "snapshots", "index"]);
const NAME_RE = /^[0-9a-f]{64}$/;

function respond(
  status: number,
  body: BodyInit | null = null,
  headers: Record<string, string> = {},
) {
  return new Response(body, { status, headers: { "cache-control": "no-store", ...headers } });
}

function fail(status: number, message: string): never {
  throw new HttpError(status, message);
}

export class ResticServer {
  readonly fs: ShoalFs;
  readonly #dirs = new Map<string, Promise<ShoalFs>>();
  #journal: Promise<LinkJournal | null> | null = null;

  constructor(readonly opts: ResticOptions) {
    this.fs = opts.fs;
  }

  /** The link journal, opened (and a previous process's replayed) on first use. */
  #getJournal(): Promise<LinkJournal | null> {
    const dir = this.opts.journalDir;
    if (!dir) return Promise.resolve(null);
    this.#journal ??= (async () => {
      const id = journalId(formatCap(await readcapOf(parseCap(this.fs.root))));
      return await LinkJournal.open(dir, id, (b) => this.#apply(b), this.opts.log ?? (() => {}));
    })();
    this.#journal.catch(() => (this.#journal = null));
    return this.#journal;
  }

  /** Apply journalled changes to the grid: one coalesced publish per directory (lib/fs). */
  async #apply(batch: JournalEntry[]): Promise<void> {
    const results = await Promise.allSettled(batch.map(async (e) => {
      const fs = await this.#fsFor(e.path.slice(0, -1), true);
      const name = e.path.slice(-1);
      if (e.op === "link") {
        await fs.link(name, e.cap!, { metadata: { size: e.size } });
      } else {
        await fs.unlink(name).catch((err) => {
          if (!(err instanceof FsError && err.code === "not-found")) throw err;
        });
      }
    }));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /** Start serving: replay what a previous process journalled. */
  async open(): Promise<void> {
    await this.#getJournal();
  }

  /** Link everything journalled, then release the journal. */
  async close(): Promise<void> {
    const j = await this.#journal?.catch(() => null);
    await j?.close();
  }

  handler = async (req: Request): Promise<Response> => {
    try {
      if (!basicAuthOk(req, this.opts.user, this.opts.password)) {
        await req.body?.cancel();
        return respond(401, "unauthorized\n", { "www-authenticate": 'Basic realm="shoal restic"' });
      }
      if (req.method !== "GET" && req.method !== "HEAD" && crossSite(req)) {
        await req.body?.cancel();
        return respond(403, "cross-site request refused\n");
      }
      return await this.#route(req);
    } catch (e) {
      await req.body?.cancel().catch(() => {});
      if (e instanceof HttpError) return respond(e.status, e.message + "\n", e.headers);
      const { status, message } = statusOf(e);
      return respond(status, message + "\n");
    }
  };

  /** Where object `name` of `type` lives. */
  #pathOf(type: string, name: string): string[] {
    if (type === "data") return ["data", name.slice(0, 2), name];
    return [type, name];
  }

  async #route(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const segs = url.pathname.split("/").filter((s) => s !== "");
    const m = req.method;
    if (segs.length === 0) {
      if (m === "POST" && url.searchParams.get("create") === "true") return await this.#create();
      if (m === "DELETE") fail(405, "deleting the repository is not supported");
      fail(404, "not found");
    }
    if (segs.length === 1 && segs[0] === "config") return await this.#object(req, ["config"]);
    const type = segs[0];
    if (!TYPES.has(type)) fail(404, "not found");
    if (segs.length === 1) {
      if (m !== "GET" && m !== "HEAD") fail(405, "a listing is read with GET");
      return await this.#list(req, type);
    }
    // restic's local layout puts data/XX/ID; accept that spelling too.
    const name = segs.length === 3 && type === "data" && segs[1] === segs[2].slice(0, 2)
      ? segs[2]
      : segs.length === 2
      ? segs[1]
      : null;
    if (name === null || !NAME_RE.test(name)) fail(404, "not found");
    return await this.#object(req, this.#pathOf(type, name));
  }

  async #create(): Promise<Response> {
    for (const t of TYPES) await this.#fsFor([t], true);
    return respond(200);
  }

  /**
   * The file system rooted at directory `dir` of the repository, made when `create` and
   * missing. Cached: a repository's directories are never removed or replaced, so each
   * request works on its object's directory directly instead of walking from the top.
   */
  #fsFor(dir: string[], create = false): Promise<ShoalFs> {
    if (dir.length === 0) return Promise.resolve(this.fs);
    const key = dir.join("/");
    const cached = this.#dirs.get(key);
    if (cached) return cached;
    const opened = (async () => {
      const parent = await this.#fsFor(dir.slice(0, -1), create);
      const name = dir[dir.length - 1];
      let n = await parent.stat([name]);
      if (n && n.kind !== "directory") fail(500, "the repository layout is damaged");
      if (!n) {
        if (!create) throw new FsError("not-found", `no directory ${key}`);
        try {
          n = await parent.mkdir([name]);
        } catch (e) {
          // Another request made it first.
          if (!(e instanceof FsError && e.code === "exists")) throw e;
          n = await parent.resolve([name]);
        }
      }
      return await ShoalFs.open(n.cap, this.fs.ctx);
    })();
    this.#dirs.set(key, opened);
    opened.catch(() => this.#dirs.delete(key));
    return opened;
  }

  async #stat(path: string[]): Promise<FsNode | null> {
    const pending = (await this.#getJournal())?.get(path);
    if (pending) {
      return pending.op === "link"
        ? await nodeOf(path, pending.cap!, { size: pending.size })
        : null;
    }
    try {
      const n = await (await this.#fsFor(path.slice(0, -1))).stat(path.slice(-1));
      return n && n.kind !== "directory" ? n : null;
    } catch (e) {
      if (e instanceof FsError && (e.code === "not-found" || e.code === "not-directory")) {
        return null;
      }
      throw e;
    }
  }

  async #object(req: Request, path: string[]): Promise<Response> {
    switch (req.method) {
      case "HEAD":
      case "GET": {
        const n = await this.#stat(path);
        if (!n) return respond(404);
        const size = await this.fs.sizeOf(n);
        const range = parseRange(req.headers.get("range"), size);
        const offset = range?.start ?? 0;
        const length = range ? range.end - range.start + 1 : size;
        const headers: Record<string, string> = {
          "content-type": "application/octet-stream",
          "content-length": String(length),
          "accept-ranges": "bytes",
        };
        if (range) headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
        const status = range ? 206 : 200;
        if (req.method === "HEAD" || length === 0) return respond(status, null, headers);
        return respond(status, await this.fs.read(n, { offset, length }), headers);
      }
      case "POST": {
        const fs = await this.#fsFor(path.slice(0, -1), true);
        // restic's objects are encrypted and named by their hash already: a random key (one
        // pass over the bytes, no convergent hashing), streamed as it arrives when restic
        // says its length (it always does).
        const len = req.headers.get("content-length");
        const opts = {
          convergence: false,
          size: len !== null && /^\d{1,15}$/.test(len) ? Number(len) : undefined,
        };
        const journal = await this.#getJournal();
        if (!journal) {
          await fs.write(path.slice(-1), req.body, opts);
          return respond(200);
        }
        const up = await fs.upload(req.body, opts);
        await journal.record({ op: "link", path, cap: up.cap, size: up.size });
        return respond(200);
      }
      case "DELETE": {
        const journal = await this.#getJournal();
        if (journal) {
          if (!(await this.#stat(path))) return respond(404);
          await journal.record({ op: "unlink", path });
          return respond(200);
        }
        try {
          await (await this.#fsFor(path.slice(0, -1))).unlink(path.slice(-1));
        } catch (e) {
          if (e instanceof FsError && (e.code === "not-found" || e.code === "not-directory")) {
            return respond(404);
          }
          throw e;
        }
        return respond(200);
      }
      default:
        fail(405, `${req.method} is not supported here`);
    }
  }

  async #listDir(path: string[]): Promise<FsNode[]> {
    let fs: ShoalFs;
    try {
      fs = await this.#fsFor(path);
    } catch (e) {
      if (e instanceof FsError && e.code === "not-found") return [];
      throw e;
    }
    return (await fs.list([])).entries;
  }

  async #list(req: Request, type: string): Promise<Response> {
    const read = async () => {
      let files: FsNode[];
      if (type === "data") {
        const shards = (await this.#listDir(["data"])).filter((n) => n.kind === "directory");
        files = (await mapLimit(shards, 8, (s) => this.#listDir(["data", s.name]))).flat();
      } else files = await this.#listDir([type]);
      return files.filter((n) => n.kind !== "directory" && NAME_RE.test(n.name));
    };
    const journal = await this.#getJournal();
    let files: FsNode[];
    if (journal) {
      const o = await journal.overlay([type], read, (n) => this.#pathOf(type, n.name));
      files = o.items;
      for (const e of o.links) files.push(await nodeOf(e.path, e.cap!, { size: e.size }));
    } else files = await read();
    const v2 = (req.headers.get("accept") ?? "").includes(RESTIC_V2);
    const body = v2
      ? JSON.stringify(
        await mapLimit(files, 8, async (n) => ({ name: n.name, size: await this.fs.sizeOf(n) })),
      )
      : JSON.stringify(files.map((n) => n.name));
    return respond(200, req.method === "HEAD" ? null : body, {
      "content-type": v2 ? RESTIC_V2 : "application/vnd.x.restic.rest.v1",
    });
  }
}
