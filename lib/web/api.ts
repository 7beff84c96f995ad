/**
 * The web API's file operations: upload, download (with Range), mkdir, list,
 * link and unlink, addressed by cap (`/uri/CAP/path`) or alias
 * (`/alias/NAME/path`), plus "where are the shares of this cap". Access
 * checks (token, Host, Origin) happen in gateway.ts before these run.
 * docs/web-api.md is the normative description.
 */
import {
  type Cap,
  CapError,
  capStorageIndex,
  formatCap,
  parseCap,
  readcapOf,
} from "../crypto/mod.ts";
import { FsError, ShoalFs, spool } from "../fs/mod.ts";
import {
  DirectoryError,
  type Grid,
  GridError,
  mapLimit,
  normalizeName,
  NotEnoughServersError,
  UnrecoverableError,
} from "../grid/mod.ts";

export interface ApiContext {
  /** A Grid over the servers this node knows now. */
  getGrid(): Promise<Grid>;
  shares: { k: number; n: number; happy: number };
  convergenceSecret(): Promise<Uint8Array>;
  /** The cap an alias names, or null. */
  resolveAlias(name: string): Promise<string | null>;
  /** A private directory for spooling uploads (removed after each). */
  tmpDir: string;
  /** Largest mutable file accepted (bytes; default 64 MiB). */
  maxMutableBytes?: number;
  /** Called with the cap of every upload not linked anywhere (PUT /uri), so upkeep keeps it. */
  recordUpload?: (cap: string) => Promise<void>;
}

/** An error with an HTTP status; `message` is safe to show (never a cap). */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const SECURITY_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
};

export function textResponse(
  status: number,
  text: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(text.endsWith("\n") ? text : text + "\n", {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

export function jsonResponse(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body, null, 1) + "\n", {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "application/json", ...headers },
  });
}

/** Map any error to a response whose text is safe to show (no caps, no secrets). */
export function errorResponse(e: unknown): Response {
  if (e instanceof HttpError) return textResponse(e.status, e.message, e.headers);
  const msg = (e as Error)?.message ?? String(e);
  if (e instanceof FsError) {
    const status = {
      "not-found": 404,
      "exists": 409,
      "not-directory": 400,
      "is-directory": 409,
      "read-only": 403,
      "invalid": 400,
      "too-large": 413,
    }[e.code];
    return textResponse(status, msg);
  }
  if (e instanceof CapError) return textResponse(400, `not a valid cap: ${msg}`);
  if (e instanceof DirectoryError) {
    if (/^no entry named/.test(msg)) return textResponse(404, msg);
    if (/already exists/.test(msg)) return textResponse(409, msg);
    return textResponse(400, msg);
  }
  if (e instanceof NotEnoughServersError) return textResponse(503, msg);
  if (e instanceof UnrecoverableError) return textResponse(503, msg);
  if (e instanceof GridError && /needs a writecap/.test(msg)) return textResponse(403, msg);
  if (e instanceof GridError) return textResponse(502, msg);
  return textResponse(500, `internal error: ${(e as Error)?.name ?? "Error"}: ${msg}`);
}

// ---------------------------------------------------------------- paths

interface Target {
  /** The cap the path starts from. */
  root: string;
  /** Entry names below it (normalized). */
  path: string[];
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, "the path has a malformed %-escape");
  }
}

/** `/uri/CAP/a/b` or `/alias/NAME/a/b` → Target; null for `/uri` itself. */
export async function parseTarget(pathname: string, ctx: ApiContext): Promise<Target | null> {
  const segs = pathname.split("/").slice(1);
  const kind = segs.shift();
  // A trailing slash names the same object.
  if (segs.length && segs[segs.length - 1] === "") segs.pop();
  if (kind === "uri" && segs.length === 0) return null;
  if (segs.length === 0) throw new HttpError(404, "name an alias: /alias/NAME[/path]");
  const first = decodeSegment(segs.shift()!);
  const path = segs.map((s) => {
    const n = decodeSegment(s);
    if (n === "") throw new HttpError(400, "the path has an empty name (two slashes in a row)");
    try {
      return normalizeName(n);
    } catch (e) {
      throw new HttpError(400, (e as Error).message);
    }
  });
  if (kind === "uri") {
    parseCap(first); // CapError → 400 before any work
    return { root: first, path };
  }
  const cap = await ctx.resolveAlias(first);
  if (cap === null) {
    throw new HttpError(404, `no alias named '${first}'; add one with 'shoal client alias add'`);
  }
  return { root: cap, path };
}

const isDir = (c: Cap) => c.kind === "dir-write" || c.kind === "dir-read";

/** The file system (lib/fs) rooted at a target's directory cap. */
function fsOf(ctx: ApiContext, root: string): Promise<ShoalFs> {
  return ShoalFs.open(root, {
    getGrid: ctx.getGrid,
    shares: ctx.shares,
    convergenceSecret: ctx.convergenceSecret,
    tmpDir: ctx.tmpDir,
  });
}

/** The cap (the strongest one known) of the object a target names. */
async function walk(ctx: ApiContext, t: Target): Promise<string> {
  if (t.path.length === 0) return t.root;
  return (await (await fsOf(ctx, t.root)).resolve(t.path)).cap;
}

function requireName(t: Target): void {
  if (t.path.length === 0) {
    throw new HttpError(400, "name an entry inside a directory: /uri/DIRCAP/NAME");
  }
}

// ---------------------------------------------------------------- ranges

/** Parse a single `bytes=` range against `size`; null: serve the whole body. */
export function parseRange(
  header: string | null,
  size: number,
): { start: number; end: number } | null {
  if (header === null) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null; // multiple or malformed ranges: ignore (RFC 9110)
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) {
      throw new HttpError(416, "empty suffix range", { "content-range": `bytes */${size}` });
    }
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== "" && Number(m[2]) < start) return null;
  }
  if (!Number.isSafeInteger(start) || start >= size) {
    throw new HttpError(416, `the range starts at or past the end of the ${size}-byte file`, {
      "content-range": `bytes */${size}`,
    });
  }
  return { start, end };
}

function contentDisposition(url: URL): Record<string, string> {
  const name = url.searchParams.get("filename");
  if (!name) return {};
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return {
    "content-disposition": `attachment; filename="${ascii}"; filename*=UTF-8''${
      encodeURIComponent(name)
    }`,
  };
}

/** Headers for file bodies: never rendered as a page with our origin's privileges. */
const FILE_HEADERS: Record<string, string> = {
  ...SECURITY_HEADERS,
  "content-security-policy": "sandbox; default-src 'none'",
  "accept-ranges": "bytes",
};

// ---------------------------------------------------------------- operations

function kindName(c: Cap): string {
  switch (c.kind) {
    case "dir-write":
    case "dir-read":
    case "dir-verify":
      return "directory";
    case "immutable-read":
    case "immutable-verify":
      return "file";
    default:
      return "mutable-file";
  }
}

async function describe(cap: string): Promise<Record<string, unknown>> {
  const c = parseCap(cap);
  const readcap = formatCap(await readcapOf(c));
  const out: Record<string, unknown> = { kind: kindName(c), readcap };
  if (readcap !== cap) out.writecap = cap;
  if (c.kind === "immutable-read") out.size = c.size;
  return out;
}

async function listing(grid: Grid, cap: string): Promise<Response> {
  const doc = await grid.listDirectory(cap);
  const entries = await Promise.all(doc.entries.map(async (e) => ({
    name: e.name,
    ...(await describe(e.writecap ?? e.readcap)),
    metadata: e.metadata,
  })));
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return jsonResponse(200, { ...(await describe(cap)), seqnum: doc.seqnum, entries });
}

/** A stream whose first chunk is read before the response starts, so early failures get a status. */
async function primed(stream: ReadableStream<Uint8Array>): Promise<ReadableStream<Uint8Array>> {
  const reader = stream.getReader();
  const first = await reader.read();
  let sentFirst = false;
  return new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      if (!sentFirst) {
        sentFirst = true;
        if (first.done) return ctrl.close();
        ctrl.enqueue(first.value);
        return;
      }
      const r = await reader.read();
      if (r.done) ctrl.close();
      else ctrl.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

async function download(req: Request, url: URL, grid: Grid, cap: string): Promise<Response> {
  const c = parseCap(cap);
  if (c.kind === "immutable-verify" || c.kind === "mutable-verify") {
    throw new HttpError(400, "a verify cap cannot read contents; use a readcap");
  }
  const head = req.method === "HEAD";
  const base = {
    ...FILE_HEADERS,
    "content-type": "application/octet-stream",
    ...contentDisposition(url),
  };
  if (c.kind === "immutable-read") {
    const range = parseRange(req.headers.get("range"), c.size);
    const start = range?.start ?? 0;
    const length = range ? range.end - range.start + 1 : c.size;
    const headers: Record<string, string> = { ...base, "content-length": String(length) };
    if (range) headers["content-range"] = `bytes ${range.start}-${range.end}/${c.size}`;
    const status = range ? 206 : 200;
    if (head || length === 0) return new Response(null, { status, headers });
    const body = await primed(grid.downloadImmutable(cap, { offset: start, length }));
    return new Response(body, { status, headers });
  }
  const r = await grid.readMutable(cap);
  const size = r.contents.length;
  const range = parseRange(req.headers.get("range"), size);
  const data = range ? r.contents.subarray(range.start, range.end + 1) : r.contents;
  const headers: Record<string, string> = { ...base, "content-length": String(data.length) };
  if (range) headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
  return new Response(head ? null : new Uint8Array(data), { status: range ? 206 : 200, headers });
}

/** Upload the body (mutable: in memory, bounded; immutable: spooled to a private temp file). */
async function uploadBody(req: Request, url: URL, ctx: ApiContext, grid: Grid): Promise<string> {
  const format = formatOf(url);
  if (format === "mutable") {
    const max = ctx.maxMutableBytes ?? 64 * 1024 * 1024;
    const data = await readLimited(req, max);
    const { writecap } = await grid.createMutableFile(data);
    return writecap;
  }
  const sp = await spool(req.body, ctx.tmpDir);
  try {
    const noConvergence = url.searchParams.get("convergence") === "false";
    const { k, n, happy } = ctx.shares;
    const r = await grid.uploadImmutable(sp.source, {
      k,
      n,
      happy,
      convergenceSecret: noConvergence ? null : await ctx.convergenceSecret(),
    });
    return r.cap;
  } finally {
    await sp.remove();
  }
}

function formatOf(url: URL): "immutable" | "mutable" {
  const format = url.searchParams.get("format") ?? "immutable";
  if (format !== "immutable" && format !== "mutable") {
    throw new HttpError(400, "format must be 'immutable' (the default) or 'mutable'");
  }
  return format;
}

async function readLimited(req: Request, max: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    for await (const chunk of req.body) {
      size += chunk.length;
      if (size > max) {
        throw new HttpError(
          413,
          `a mutable file may hold at most ${max} bytes; upload it as immutable`,
        );
      }
      parts.push(chunk);
    }
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Handle `/uri[...]` and `/alias/...` once access checks have passed. */
export async function handleFiles(req: Request, url: URL, ctx: ApiContext): Promise<Response> {
  const t = await parseTarget(url.pathname, ctx);
  const grid = await ctx.getGrid();
  const op = url.searchParams.get("t");
  switch (req.method) {
    case "GET":
    case "HEAD": {
      if (!t) throw new HttpError(400, "name a cap: /uri/CAP");
      const cap = await walk(ctx, t);
      const c = parseCap(cap);
      if (c.kind === "dir-verify") throw new HttpError(400, "a verify cap cannot list a directory");
      if (isDir(c)) return await listing(grid, cap);
      if (op === "json") {
        const d = await describe(cap);
        if (
          c.kind !== "immutable-read" && c.kind !== "immutable-verify" &&
          c.kind !== "mutable-verify"
        ) {
          d.size = (await grid.readMutable(cap)).contents.length;
        }
        return jsonResponse(200, d);
      }
      return await download(req, url, grid, cap);
    }
    case "PUT": {
      if (!t) {
        const cap = await uploadBody(req, url, ctx, grid);
        await ctx.recordUpload?.(cap);
        return textResponse(201, cap);
      }
      if (t.path.length === 0) {
        // Replace a mutable file's contents in place.
        const c = parseCap(t.root);
        if (c.kind !== "mutable-write") {
          throw new HttpError(
            400,
            "PUT to a cap alone needs a mutable file's writecap; use PUT /uri to upload",
          );
        }
        const data = await readLimited(req, ctx.maxMutableBytes ?? 64 * 1024 * 1024);
        await grid.writeMutable(t.root, data);
        return textResponse(200, t.root);
      }
      const fs = await fsOf(ctx, t.root);
      const noReplace = url.searchParams.get("replace") === "false";
      if (op === "uri") {
        const child = (await readLimited(req, 4096).then((b) => new TextDecoder().decode(b)))
          .trim();
        parseCap(child);
        await fs.link(t.path, child, { noReplace });
        return textResponse(200, child);
      }
      if (formatOf(url) === "mutable") {
        const child = await uploadBody(req, url, ctx, grid);
        await fs.link(t.path, child, { noReplace });
        return textResponse(201, child);
      }
      const node = await fs.write(t.path, req.body, {
        noReplace,
        convergence: url.searchParams.get("convergence") !== "false",
      });
      return textResponse(201, node.cap);
    }
    case "POST": {
      if (op !== "mkdir") throw new HttpError(400, "POST takes ?t=mkdir (uploads use PUT)");
      if (!t) return textResponse(201, await grid.createDirectory());
      requireName(t);
      const node = await (await fsOf(ctx, t.root)).mkdir(t.path);
      return textResponse(201, node.cap);
    }
    case "DELETE": {
      if (!t) throw new HttpError(400, "name an entry: DELETE /uri/DIRCAP/NAME");
      requireName(t);
      await (await fsOf(ctx, t.root)).unlink(t.path);
      return new Response(null, { status: 204, headers: SECURITY_HEADERS });
    }
    default:
      throw new HttpError(405, `${req.method} is not supported here`, {
        allow: "GET, HEAD, PUT, POST, DELETE",
      });
  }
}

export interface SharesReport {
  kind: string;
  servers: { serverId: string; nickname: string; shares: number[]; error: string | null }[];
  /** Distinct share numbers found anywhere. */
  distinctShares: number;
}

/** Which servers hold which shares of the object `cap` names (any cap kind). */
export async function sharesOf(
  grid: Grid,
  cap: string,
  serverIdOf: (id: Uint8Array) => string,
): Promise<SharesReport> {
  const c = parseCap(cap);
  const si = await capStorageIndex(c);
  const immutable = c.kind === "immutable-read" || c.kind === "immutable-verify";
  const servers = await mapLimit(grid.servers.permuted(si), 16, async (s) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const list = await Promise.race([
        immutable ? s.storage.listImmutable(si) : s.storage.listMutable(si),
        new Promise<never>((_, rej) => {
          timer = setTimeout(() => rej(new Error("no answer within 5 s")), 5000);
        }),
      ]);
      return {
        serverId: serverIdOf(s.serverId),
        nickname: s.nickname ?? "",
        shares: [...list].sort((a, b) => a - b),
        error: null,
      };
    } catch (e) {
      return {
        serverId: serverIdOf(s.serverId),
        nickname: s.nickname ?? "",
        shares: [],
        error: (e as Error).message,
      };
    } finally {
      clearTimeout(timer);
    }
  });
  const distinct = new Set(servers.flatMap((s) => s.shares));
  return { kind: kindName(c), servers, distinctShares: distinct.size };
}
