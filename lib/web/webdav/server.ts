/**
 * WebDAV (RFC 4918, class 1 and 2) over the file-system API: one directory tree under a root
 * cap, served at `/`. docs/webdav.md is the description; this file maps each method onto
 * lib/fs and keeps locks in memory (locks.ts).
 *
 * Dead properties (PROPPATCH) live in the directory entry's metadata under `dav` (the root's
 * in the directory-wide metadata), as `{ "{ns}name": "<the property element as XML>" }`.
 */
import { FsError, type FsNode, parseFsPath, type ShoalFs, showPath } from "../../fs/mod.ts";
import { basicAuthOk, crossSite, statusOf } from "../frontend.ts";
import { parseRange } from "../api.ts";
import { HttpError } from "../api.ts";
import {
  type Lock,
  LockConflict,
  type LockScope,
  LockTable,
  parseIf,
  parseTimeout,
} from "./locks.ts";
import {
  child,
  clark,
  elements,
  emptyElement,
  esc,
  isDav,
  parseXml,
  serialize,
  XmlError,
  type XNode,
} from "./xml.ts";

export interface WebdavOptions {
  fs: ShoalFs;
  user: string;
  password: string;
  /** Refuse every change (403), whatever the caps allow. */
  readOnly?: boolean;
  locks?: LockTable;
}

/** Largest XML request body read (PROPFIND, PROPPATCH, LOCK). */
const MAX_XML_BODY = 1024 * 1024;
/** Largest total size of one resource's dead properties. */
const MAX_DEAD_PROPS = 64 * 1024;

const XML_HEADERS = { "content-type": 'application/xml; charset="utf-8"' };
const BASE_HEADERS = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
};

const LIVE = [
  "resourcetype",
  "getcontentlength",
  "getcontenttype",
  "getetag",
  "getlastmodified",
  "creationdate",
  "displayname",
  "supportedlock",
  "lockdiscovery",
].map((l) => `{DAV:}${l}`);

const ALLOW =
  "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK";

function respond(status: number, body: string | null = null, headers: Record<string, string> = {}) {
  return new Response(body, {
    status,
    headers: {
      ...BASE_HEADERS,
      ...(body !== null && !headers["content-type"]
        ? { "content-type": "text/plain; charset=utf-8" }
        : {}),
      ...headers,
    },
  });
}

function fail(status: number, message: string): never {
  throw new HttpError(status, message);
}

function hrefOf(path: readonly string[], dir: boolean): string {
  const p = "/" + path.map((n) => encodeURIComponent(n)).join("/");
  return dir && path.length ? p + "/" : p;
}

/** Request path → names (400 for bad names or escapes). */
function pathOf(pathname: string): string[] {
  let decoded: string[];
  try {
    decoded = pathname.split("/").map((s) => decodeURIComponent(s));
  } catch {
    fail(400, "the path has a malformed %-escape");
  }
  try {
    return parseFsPath(decoded.filter((s) => s !== "").join("/"));
  } catch (e) {
    if (e instanceof FsError) fail(400, e.message);
    throw e;
  }
}

/** A header holding seconds since the epoch (ownCloud's X-OC-Mtime), or null. */
function unixTime(h: string | null): number | null {
  if (h === null || !/^\s*\d{1,12}(\.\d+)?\s*$/.test(h)) return null;
  return Math.floor(Number(h));
}

function httpDate(seconds: number | null): string | null {
  return seconds === null ? null : new Date(seconds * 1000).toUTCString();
}

function quoteEtag(n: FsNode): string | null {
  return n.etag === null ? null : `"${n.etag}"`;
}

function deadProps(n: FsNode): Record<string, string> {
  const d = n.metadata.dav;
  if (d === null || typeof d !== "object" || Array.isArray(d)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(d as Record<string, unknown>)) {
    if (typeof v === "string" && k.startsWith("{")) out[k] = v;
  }
  return out;
}

async function readText(req: Request): Promise<string> {
  if (!req.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const c of req.body) {
    size += c.length;
    if (size > MAX_XML_BODY) fail(413, `XML request bodies are limited to ${MAX_XML_BODY} bytes`);
    chunks.push(c);
  }
  const all = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return new TextDecoder().decode(all);
}

async function xmlBody(req: Request): Promise<XNode | null> {
  const text = await readText(req);
  if (text.trim() === "") return null;
  try {
    return parseXml(text);
  } catch (e) {
    if (e instanceof XmlError) fail(400, e.message);
    throw e;
  }
}

export class WebdavServer {
  readonly fs: ShoalFs;
  readonly locks: LockTable;

  constructor(readonly opts: WebdavOptions) {
    this.fs = opts.fs;
    this.locks = opts.locks ?? new LockTable();
  }

  /** The request handler: Basic auth, then the method. Nothing is logged. */
  handler = async (req: Request): Promise<Response> => {
    try {
      if (!basicAuthOk(req, this.opts.user, this.opts.password)) {
        await req.body?.cancel();
        return respond(401, "this WebDAV server needs the user and password it printed\n", {
          "www-authenticate": 'Basic realm="shoal", charset="UTF-8"',
        });
      }
      const safe = ["GET", "HEAD", "OPTIONS", "PROPFIND"].includes(req.method);
      if (!safe && crossSite(req)) {
        await req.body?.cancel();
        return respond(403, "cross-site request refused\n");
      }
      return await this.#dispatch(req);
    } catch (e) {
      await req.body?.cancel().catch(() => {});
      if (e instanceof HttpError) return respond(e.status, e.message + "\n", e.headers);
      if (e instanceof LockConflict) return respond(423, e.message + "\n");
      const { status, message } = statusOf(e);
      return respond(status, message + "\n");
    }
  };

  #dispatch(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = pathOf(url.pathname);
    const writes = ["PUT", "DELETE", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK"];
    if (this.opts.readOnly && writes.includes(req.method) && req.method !== "COPY") {
      fail(403, "this WebDAV server is read-only");
    }
    switch (req.method) {
      case "OPTIONS":
        return Promise.resolve(respond(200, null, {
          dav: "1, 2",
          allow: ALLOW,
          "ms-author-via": "DAV",
          "accept-ranges": "bytes",
        }));
      case "GET":
      case "HEAD":
        return this.#get(req, path);
      case "PUT":
        return this.#put(req, path);
      case "DELETE":
        return this.#delete(req, path);
      case "MKCOL":
        return this.#mkcol(req, path);
      case "PROPFIND":
        return this.#propfind(req, path);
      case "PROPPATCH":
        return this.#proppatch(req, path);
      case "COPY":
      case "MOVE":
        return this.#copyMove(req, url, path, req.method === "MOVE");
      case "LOCK":
        return this.#lock(req, path);
      case "UNLOCK":
        return this.#unlock(req, path);
      default:
        return Promise.resolve(respond(405, `${req.method} is not supported\n`, { allow: ALLOW }));
    }
  }

  // ---------------------------------------------------------------- conditions and locks

  /**
   * Evaluate `If` (RFC 4918 §10.4) against the current state: 412 when no list holds. Returns
   * the lock tokens the request submitted.
   */
  async #checkIf(req: Request, path: string[], node: FsNode | null): Promise<Set<string>> {
    const header = req.headers.get("if");
    const tokens = new Set<string>();
    if (header === null) return tokens;
    const lists = parseIf(header);
    if (!lists) fail(400, "malformed If header");
    let any = false;
    for (const list of lists) {
      let p = path;
      let n: FsNode | null = node;
      if (list.resource !== null) {
        try {
          p = pathOf(new URL(list.resource, req.url).pathname);
        } catch {
          continue;
        }
        n = showPath(p) === showPath(path) ? node : await this.fs.stat(p).catch(() => null);
      }
      const held = new Set(this.locks.covering(p).map((l) => l.token));
      const etag = n ? quoteEtag(n) : null;
      let ok = true;
      for (const c of list.conditions) {
        let v: boolean;
        if (c.token !== undefined) {
          v = held.has(c.token);
          if (!c.not) tokens.add(c.token);
        } else v = etag !== null && c.etag === etag;
        if (c.not) v = !v;
        if (!v) ok = false;
      }
      if (ok) any = true;
    }
    if (!any) fail(412, "the If header's conditions do not hold");
    return tokens;
  }

  /** 423 unless every lock on `path` (and, with `deep`, below it) was submitted. */
  #checkLocks(path: string[], tokens: Set<string>, deep = false): void {
    const covering = this.locks.covering(path);
    if (covering.length && !covering.some((l) => tokens.has(l.token))) {
      throw new HttpError(423, `${showPath(path)} is locked`);
    }
    if (deep) {
      for (const l of this.locks.within(path)) {
        if (!tokens.has(l.token) && !covering.includes(l)) {
          throw new HttpError(423, `${showPath(l.path)} is locked`);
        }
      }
    }
  }

  /** A new member of the collection at `parent` needs the tokens of locks on that collection. */
  #checkParentLocks(path: string[], tokens: Set<string>): void {
    if (!path.length) return;
    const parent = path.slice(0, -1);
    const onParent = this.locks.covering(parent);
    if (onParent.length && !onParent.some((l) => tokens.has(l.token))) {
      throw new HttpError(423, `${showPath(parent)} is locked`);
    }
  }

  #checkMatch(req: Request, node: FsNode | null): void {
    const im = req.headers.get("if-match");
    if (im !== null) {
      const etag = node ? quoteEtag(node) : null;
      const ok = im.trim() === "*"
        ? node !== null
        : etag !== null && im.split(",").map((s) => s.trim()).includes(etag);
      if (!ok) fail(412, "If-Match does not hold");
    }
    const inm = req.headers.get("if-none-match");
    if (inm !== null && req.method !== "GET" && req.method !== "HEAD") {
      const etag = node ? quoteEtag(node) : null;
      const hit = inm.trim() === "*"
        ? node !== null
        : etag !== null && inm.split(",").map((s) => s.trim()).includes(etag);
      if (hit) fail(412, "If-None-Match does not hold");
    }
  }

  // ---------------------------------------------------------------- GET, HEAD

  async #get(req: Request, path: string[]): Promise<Response> {
    const node = await this.fs.resolve(path);
    this.#checkMatch(req, node);
    if (node.kind === "directory") {
      const l = await this.fs.list(node);
      const rows = l.entries.map((e) =>
        `<li><a href="${esc(hrefOf(e.path, e.kind === "directory"))}">${esc(e.name)}${
          e.kind === "directory" ? "/" : ""
        }</a></li>`
      ).join("\n");
      const html = `<!doctype html><meta charset="utf-8"><title>${esc(showPath(path))}</title><h1>${
        esc(showPath(path))
      }</h1><ul>\n${rows}\n</ul>\n`;
      return respond(200, req.method === "HEAD" ? null : html, {
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": "default-src 'none'",
      });
    }
    const size = await this.fs.sizeOf(node);
    const headers: Record<string, string> = {
      "content-type": typeof node.metadata.contentType === "string"
        ? node.metadata.contentType
        : "application/octet-stream",
      "content-security-policy": "sandbox; default-src 'none'",
      "accept-ranges": "bytes",
    };
    const etag = quoteEtag(node);
    if (etag) headers.etag = etag;
    const lm = httpDate(node.mtime);
    if (lm) headers["last-modified"] = lm;
    const inm = req.headers.get("if-none-match");
    if (
      inm !== null && etag &&
      (inm.trim() === "*" || inm.split(",").map((s) => s.trim()).includes(etag))
    ) {
      return respond(304, null, headers);
    }
    let rangeHeader = req.headers.get("range");
    const ifRange = req.headers.get("if-range");
    if (ifRange !== null && ifRange.trim() !== etag && ifRange.trim() !== lm) rangeHeader = null;
    const range = parseRange(rangeHeader, size);
    const offset = range?.start ?? 0;
    const length = range ? range.end - range.start + 1 : size;
    headers["content-length"] = String(length);
    if (range) headers["content-range"] = `bytes ${range.start}-${range.end}/${size}`;
    const status = range ? 206 : 200;
    if (req.method === "HEAD" || length === 0) return respond(status, null, headers);
    const body = await this.fs.read(node, { offset, length });
    return new Response(body, { status, headers: { ...BASE_HEADERS, ...headers } });
  }

  // ---------------------------------------------------------------- PUT, DELETE, MKCOL

  async #put(req: Request, path: string[]): Promise<Response> {
    if (!path.length) fail(405, "the root is a collection");
    const node = await this.#statParent(path);
    if (node?.kind === "directory") fail(405, "PUT to a collection");
    const tokens = await this.#checkIf(req, path, node);
    this.#checkMatch(req, node);
    this.#checkLocks(path, tokens);
    if (!node) this.#checkParentLocks(path, tokens);
    const ct = req.headers.get("content-type");
    const metadata: Record<string, unknown> = {};
    if (ct && ct !== "application/octet-stream" && ct.length < 200) metadata.contentType = ct;
    // ownCloud/Nextcloud clients (rclone's vendor=owncloud) send the file's own times.
    const headers: Record<string, string> = {};
    const mtime = unixTime(req.headers.get("x-oc-mtime"));
    if (mtime !== null) {
      metadata.mtime = mtime;
      headers["x-oc-mtime"] = "accepted";
    }
    const ctime = unixTime(req.headers.get("x-oc-ctime"));
    if (ctime !== null && !node) metadata.ctime = ctime;
    const created = await this.fs.write(path, req.body, { metadata });
    if (created.etag) headers.etag = `"${created.etag}"`;
    return respond(node ? 204 : 201, null, headers);
  }

  /** stat(path), with a missing or non-collection parent as 409 (RFC 4918 §9.7.1). */
  async #statParent(path: string[]): Promise<FsNode | null> {
    try {
      return await this.fs.stat(path);
    } catch (e) {
      if (e instanceof FsError && (e.code === "not-found" || e.code === "not-directory")) {
        fail(409, "the parent collection does not exist");
      }
      throw e;
    }
  }

  async #delete(req: Request, path: string[]): Promise<Response> {
    if (!path.length) fail(403, "the root cannot be deleted");
    const url = new URL(req.url);
    if (url.hash) fail(400, "a fragment in the URL");
    const node = await this.fs.resolve(path);
    const tokens = await this.#checkIf(req, path, node);
    this.#checkMatch(req, node);
    this.#checkLocks(path, tokens, true);
    this.#checkParentLocks(path, tokens);
    await this.fs.unlink(path);
    this.locks.removeWithin(path);
    return respond(204);
  }

  async #mkcol(req: Request, path: string[]): Promise<Response> {
    const body = await readText(req);
    if (body.length > 0) fail(415, "MKCOL with a body is not supported");
    if (!path.length) fail(405, "the root exists");
    const node = await this.#statParent(path);
    if (node) fail(405, "something already exists there");
    const tokens = await this.#checkIf(req, path, null);
    this.#checkParentLocks(path, tokens);
    this.#checkLocks(path, tokens);
    try {
      await this.fs.mkdir(path);
    } catch (e) {
      if (e instanceof FsError && e.code === "exists") fail(405, "something already exists there");
      throw e;
    }
    return respond(201);
  }

  // ---------------------------------------------------------------- COPY, MOVE

  async #copyMove(req: Request, url: URL, path: string[], move: boolean): Promise<Response> {
    if (this.opts.readOnly) fail(403, "this WebDAV server is read-only");
    const destHeader = req.headers.get("destination");
    if (!destHeader) fail(400, "COPY and MOVE need a Destination header");
    let dest: URL;
    try {
      dest = new URL(destHeader, url);
    } catch {
      fail(400, "the Destination is not a URL");
    }
    if (dest.host !== url.host) fail(502, "the Destination is on another server");
    const to = pathOf(dest.pathname);
    if (!path.length) fail(403, "the root cannot be copied or moved");
    if (!to.length) fail(403, "the Destination is the root");
    if (showPath(to) === showPath(path)) fail(403, "the source and Destination are the same");
    const overwriteHeader = (req.headers.get("overwrite") ?? "T").trim().toUpperCase();
    if (overwriteHeader !== "T" && overwriteHeader !== "F") fail(400, "Overwrite must be T or F");
    const overwrite = overwriteHeader === "T";
    const depthHeader = (req.headers.get("depth") ?? "infinity").toLowerCase();
    if (depthHeader !== "0" && depthHeader !== "infinity") {
      fail(400, "Depth must be 0 or infinity for COPY and MOVE");
    }
    if (move && depthHeader !== "infinity") fail(400, "MOVE needs Depth: infinity");
    const node = await this.fs.resolve(path);
    const tokens = await this.#checkIf(req, path, node);
    if (move) {
      this.#checkLocks(path, tokens, true);
      this.#checkParentLocks(path, tokens);
    }
    const existing = await this.#statParent(to);
    if (existing && !overwrite) fail(412, "the Destination exists and Overwrite is F");
    this.#checkLocks(to, tokens, true);
    if (!existing) this.#checkParentLocks(to, tokens);
    if (existing) {
      await this.fs.unlink(to);
      this.locks.removeWithin(to);
    }
    try {
      if (move) await this.fs.rename(path, to, { noReplace: true });
      else await this.fs.copy(path, to, { noReplace: true, depth: depthHeader as "0" });
    } catch (e) {
      if (e instanceof FsError && e.code === "invalid") fail(403, e.message);
      if (e instanceof FsError && e.code === "read-only") fail(403, e.message);
      throw e;
    }
    if (move) this.locks.removeWithin(path);
    return respond(existing ? 204 : 201);
  }

  // ---------------------------------------------------------------- PROPFIND

  async #propfind(req: Request, path: string[]): Promise<Response> {
    const depth = (req.headers.get("depth") ?? "infinity").toLowerCase();
    if (depth !== "0" && depth !== "1") {
      await req.body?.cancel();
      return respond(
        403,
        `<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n`,
        XML_HEADERS,
      );
    }
    const body = await xmlBody(req);
    let mode: "allprop" | "propname" | "prop" = "allprop";
    let wanted: string[] = [];
    let include: string[] = [];
    if (body) {
      if (!isDav(body, "propfind")) fail(400, "the body is not a DAV:propfind");
      const first = elements(body).find((e) =>
        isDav(e, "allprop") || isDav(e, "propname") || isDav(e, "prop")
      );
      if (!first) fail(400, "a propfind needs allprop, propname or prop");
      if (isDav(first, "propname")) mode = "propname";
      else if (isDav(first, "prop")) {
        mode = "prop";
        wanted = elements(first).map(clark);
      }
      const inc = child(body, "include");
      if (inc) include = elements(inc).map(clark);
    }
    const node = await this.fs.resolve(path);
    const nodes = [node];
    if (depth === "1" && node.kind === "directory") {
      nodes.push(...(await this.fs.list(node)).entries);
    }
    const parts: string[] = [];
    for (const n of nodes) parts.push(await this.#propResponse(n, mode, wanted, include));
    return respond(
      207,
      `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">\n${
        parts.join("")
      }</D:multistatus>\n`,
      XML_HEADERS,
    );
  }

  async #liveProp(n: FsNode, key: string): Promise<string | null> {
    const dir = n.kind === "directory";
    switch (key) {
      case "{DAV:}resourcetype":
        return dir ? "<D:resourcetype><D:collection/></D:resourcetype>" : "<D:resourcetype/>";
      case "{DAV:}getcontentlength":
        return dir ? null : `<D:getcontentlength>${await this.fs.sizeOf(n)}</D:getcontentlength>`;
      case "{DAV:}getcontenttype":
        return dir ? null : `<D:getcontenttype>${
          esc(
            typeof n.metadata.contentType === "string"
              ? n.metadata.contentType
              : "application/octet-stream",
          )
        }</D:getcontenttype>`;
      case "{DAV:}getetag":
        return n.etag === null || dir ? null : `<D:getetag>"${n.etag}"</D:getetag>`;
      case "{DAV:}getlastmodified": {
        const d = httpDate(n.mtime);
        return d ? `<D:getlastmodified>${d}</D:getlastmodified>` : null;
      }
      case "{DAV:}creationdate":
        return n.ctime === null
          ? null
          : `<D:creationdate>${new Date(n.ctime * 1000).toISOString()}</D:creationdate>`;
      case "{DAV:}displayname":
        return n.path.length ? `<D:displayname>${esc(n.name)}</D:displayname>` : null;
      case "{DAV:}supportedlock":
        return "<D:supportedlock>" +
          ["exclusive", "shared"].map((s) =>
            `<D:lockentry><D:lockscope><D:${s}/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>`
          ).join("") + "</D:supportedlock>";
      case "{DAV:}lockdiscovery":
        return `<D:lockdiscovery>${
          this.locks.covering(n.path).map((l) => this.#activeLock(l)).join("")
        }</D:lockdiscovery>`;
    }
    return null;
  }

  async #propResponse(
    n: FsNode,
    mode: "allprop" | "propname" | "prop",
    wanted: string[],
    include: string[],
  ): Promise<string> {
    const dead = deadProps(n);
    const ok: string[] = [];
    const missing: string[] = [];
    if (mode === "propname") {
      for (const k of LIVE) if ((await this.#liveProp(n, k)) !== null) ok.push(emptyElement(k));
      for (const k of Object.keys(dead)) ok.push(emptyElement(k));
    } else {
      const keys = mode === "allprop"
        ? [...LIVE, ...Object.keys(dead), ...include.filter((k) => !LIVE.includes(k))]
        : wanted;
      for (const k of keys) {
        const live = LIVE.includes(k) ? await this.#liveProp(n, k) : null;
        if (live !== null) ok.push(live);
        else if (dead[k] !== undefined) ok.push(dead[k]);
        else if (mode === "prop") missing.push(emptyElement(k));
      }
    }
    const stat = (props: string[], status: string) =>
      props.length
        ? `<D:propstat><D:prop>${
          props.join("")
        }</D:prop><D:status>HTTP/1.1 ${status}</D:status></D:propstat>`
        : "";
    return `<D:response><D:href>${esc(hrefOf(n.path, n.kind === "directory"))}</D:href>${
      stat(ok, "200 OK")
    }${stat(missing, "404 Not Found")}</D:response>\n`;
  }

  // ---------------------------------------------------------------- PROPPATCH

  async #proppatch(req: Request, path: string[]): Promise<Response> {
    const body = await xmlBody(req);
    if (!body || !isDav(body, "propertyupdate")) fail(400, "the body is not a DAV:propertyupdate");
    const node = await this.fs.resolve(path);
    const tokens = await this.#checkIf(req, path, node);
    this.#checkLocks(path, tokens);
    const ops: { set: boolean; key: string; xml: string }[] = [];
    for (const action of elements(body)) {
      const set = isDav(action, "set");
      if (!set && !isDav(action, "remove")) continue;
      const prop = child(action, "prop");
      if (!prop) fail(400, "set and remove need a DAV:prop");
      for (const p of elements(prop)) ops.push({ set, key: clark(p), xml: serialize(p) });
    }
    const protectedOps = ops.filter((o) => LIVE.includes(o.key));
    let status: Map<string, string>;
    if (protectedOps.length) {
      // All or nothing (RFC 4918 §9.2): live properties are protected, so nothing changes.
      status = new Map(ops.map((o) => [
        o.key,
        LIVE.includes(o.key) ? "403 Forbidden" : "424 Failed Dependency",
      ]));
    } else {
      await this.fs.updateMetadata(path, (meta) => {
        const dav = { ...deadProps({ metadata: meta } as FsNode) };
        for (const o of ops) {
          if (o.set) dav[o.key] = o.xml;
          else delete dav[o.key];
        }
        const total = Object.entries(dav).reduce((s, [k, v]) => s + k.length + v.length, 0);
        if (total > MAX_DEAD_PROPS) {
          throw new HttpError(507, `dead properties are limited to ${MAX_DEAD_PROPS} bytes`);
        }
        return { ...meta, dav };
      });
      status = new Map(ops.map((o) => [o.key, "200 OK"]));
    }
    const byStatus = new Map<string, string[]>();
    for (const [k, s] of status) byStatus.set(s, [...(byStatus.get(s) ?? []), emptyElement(k)]);
    const stats = [...byStatus].map(([s, props]) =>
      `<D:propstat><D:prop>${
        props.join("")
      }</D:prop><D:status>HTTP/1.1 ${s}</D:status></D:propstat>`
    ).join("");
    return respond(
      207,
      `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:"><D:response><D:href>${
        esc(hrefOf(path, node.kind === "directory"))
      }</D:href>${stats}</D:response></D:multistatus>\n`,
      XML_HEADERS,
    );
  }

  // ---------------------------------------------------------------- LOCK, UNLOCK

  #activeLock(l: Lock): string {
    return `<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope><D:${l.scope}/></D:lockscope>` +
      `<D:depth>${l.depth}</D:depth>${l.owner ? `<D:owner>${l.owner}</D:owner>` : ""}` +
      `<D:timeout>Second-${
        Math.max(0, Math.round((l.expires - this.locks.clock()) / 1000))
      }</D:timeout>` +
      `<D:locktoken><D:href>${esc(l.token)}</D:href></D:locktoken>` +
      `<D:lockroot><D:href>${esc(hrefOf(l.path, false))}</D:href></D:lockroot></D:activelock>`;
  }

  #lockBody(l: Lock): string {
    return `<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:"><D:lockdiscovery>${
      this.#activeLock(l)
    }</D:lockdiscovery></D:prop>\n`;
  }

  async #lock(req: Request, path: string[]): Promise<Response> {
    const body = await xmlBody(req);
    const timeout = parseTimeout(req.headers.get("timeout"));
    if (!body) {
      // A refresh: the If header names the lock.
      const node = await this.fs.resolve(path);
      const tokens = await this.#checkIf(req, path, node);
      const lock = this.locks.covering(path).find((l) => tokens.has(l.token));
      if (!lock) fail(412, "a lock refresh needs the lock's token in an If header");
      this.locks.refresh(lock, timeout);
      return respond(200, this.#lockBody(lock), XML_HEADERS);
    }
    if (!isDav(body, "lockinfo")) fail(400, "the body is not a DAV:lockinfo");
    const scopeEl = child(body, "lockscope");
    const scope: LockScope | null = scopeEl && child(scopeEl, "exclusive")
      ? "exclusive"
      : scopeEl && child(scopeEl, "shared")
      ? "shared"
      : null;
    if (!scope) fail(400, "lockinfo needs a lockscope of exclusive or shared");
    const typeEl = child(body, "locktype");
    if (!typeEl || !child(typeEl, "write")) fail(400, "only write locks exist");
    const ownerEl = child(body, "owner");
    let owner = "";
    if (ownerEl) {
      for (let i = 0; i < ownerEl.childNodes.length; i++) {
        const c = ownerEl.childNodes[i];
        owner += c.nodeType === 1 ? serialize(c) : esc(c.textContent ?? "");
      }
    }
    if (owner.length > 4096) fail(400, "the lock owner is too long");
    const depthHeader = (req.headers.get("depth") ?? "infinity").toLowerCase();
    if (depthHeader !== "0" && depthHeader !== "infinity") fail(400, "Depth must be 0 or infinity");
    const node = await this.#statParent(path);
    const tokens = await this.#checkIf(req, path, node);
    if (!node) this.#checkParentLocks(path, tokens);
    const lock = this.locks.create(path, scope, depthHeader as "0", owner, timeout);
    let status = 200;
    if (!node) {
      // Locking an unmapped URL makes an empty resource (RFC 4918 §7.3).
      try {
        await this.fs.write(path, null, { noReplace: true });
      } catch (e) {
        this.locks.remove(lock.token);
        throw e;
      }
      status = 201;
    }
    return respond(status, this.#lockBody(lock), {
      ...XML_HEADERS,
      "lock-token": `<${lock.token}>`,
    });
  }

  async #unlock(req: Request, path: string[]): Promise<Response> {
    const h = req.headers.get("lock-token");
    const m = h ? /^\s*<([^>]+)>\s*$/.exec(h) : null;
    if (!m) fail(400, "UNLOCK needs a Lock-Token header: <token>");
    await this.fs.resolve(path);
    const lock = this.locks.covering(path).find((l) => l.token === m[1]);
    if (!lock) fail(409, "that lock token does not lock this resource");
    this.locks.remove(lock.token);
    return respond(204);
  }
}
