/**
 * `shoal client backup` (docs/backup.md): an incremental backup of a local directory into
 * ALIAS:PATH/Archives/<UTC timestamp>/, then PATH/Latest pointed at it.
 *
 * Every archive directory is a new directory whose writecap is dropped once it is published: it is
 * linked by readcap only, so it is a read-only snapshot. A directory whose entries are identical to
 * one already published (same names, caps and metadata) reuses that snapshot's readcap. Files are
 * uploaded as convergent immutable files; the backup database remembers (path, size, mtime, ctime,
 * inode) → cap, so an unchanged file is neither read nor uploaded again.
 */
import { toHex } from "../../codec/mod.ts";
import { capStorageIndexSync, formatCap, parseCap, readcapOf } from "../../crypto/mod.ts";
import { type DirEntry, mapLimit, normalizeName } from "../../grid/mod.ts";
import { BackupDb } from "./backupdb.ts";
import { FilesError, type FileSession } from "./files.ts";
import { ChangedError, checkedSource, printable } from "./local.ts";
import { convergenceSecret } from "./node.ts";

export { ChangedError, checkedSource };

/** Fraction of reused files and directories whose shares are checked again each run. */
export const DEFAULT_RECHECK = 0.01;
/** Entries of one directory worked on at once (reused entries are cheap). */
const PARALLEL = 32;
/**
 * File uploads in flight at once, across the whole tree: at most UPLOADS files, and files
 * weighing (their size, between UPLOAD_MIN_WEIGHT and UPLOAD_MAX_WEIGHT) at most
 * UPLOAD_BUDGET in all. A small file's upload is bound by round trips to the servers, not by
 * bytes, so many go at once; a large one holds up to ~12 MiB in flight by itself
 * (lib/grid/immutable_upload.ts), so only a few.
 */
const UPLOADS = 32;
const UPLOAD_BUDGET = 64 * 1024 * 1024;
const UPLOAD_MIN_WEIGHT = 64 * 1024;
const UPLOAD_MAX_WEIGHT = 16 * 1024 * 1024;
/** Files up to this size are read into memory once (a convergent upload reads its source twice). */
const IN_MEMORY = 1024 * 1024;

export const VCS_NAMES = [".git", ".hg", ".svn", ".bzr", "_darcs", "CVS", ".gitmodules"];

export interface BackupOptions {
  excludes?: string[];
  excludeVcs?: boolean;
  /** Re-check fraction, 0..1 (default DEFAULT_RECHECK). */
  recheck?: number;
  log?: (line: string) => void;
  /** Progress: files and bytes done, of the totals (known after the lstat-only scan). */
  progress?: (p: BackupProgress) => void;
  /** For tests: the clock. */
  now?: () => Date;
}

export interface BackupProgress {
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
  /** The last call: the scan and every upload are over. */
  done: boolean;
}

export interface BackupSummary {
  archive: string;
  filesUploaded: number;
  filesReused: number;
  directoriesCreated: number;
  directoriesReused: number;
  bytesUploaded: number;
  /** Files reused from the database whose shares were checked again this run. */
  rechecked: number;
  /** Rechecked entries found damaged and uploaded again. */
  recheckFailed: number;
  /** "PATH: why" for everything skipped (symlinks, special, unreadable, changed while read). */
  skipped: string[];
  seconds: number;
}

interface LocalNode {
  name: string;
  path: string;
  rel: string;
  st: Deno.FileInfo;
  children?: LocalNode[];
}

function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        re += ".*";
        i++;
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** A matcher for --exclude patterns: a pattern with `/` matches the relative path, else the name. */
export function excluder(patterns: string[], vcs: boolean): (name: string, rel: string) => boolean {
  const res = patterns.map((p) => ({ onPath: p.includes("/"), re: globToRegExp(p) }));
  const vcsSet = new Set(VCS_NAMES);
  return (name, rel) =>
    (vcs && vcsSet.has(name)) || res.some((r) => r.re.test(r.onPath ? rel : name));
}

/** Read an --exclude-from file: one pattern per line; blank lines and `#` comments ignored. */
export async function readExcludeFile(path: string): Promise<string[]> {
  return (await Deno.readTextFile(path)).split(/\r?\n/).map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

function utcStamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z").replace("T", "_");
}

function secs(d: Date | null): number {
  return d ? d.getTime() / 1000 : 0;
}

/**
 * At most `n` callers inside `run` at once, whose weights add up to at most `budget` (one
 * caller alone may exceed it). Callers enter in the order they asked.
 */
function limiter(
  n: number,
  budget: number,
): <T>(weight: number, fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  let used = 0;
  const waiting: { weight: number; go: () => void }[] = [];
  const fits = (w: number) => active < n && (active === 0 || used + w <= budget);
  const wake = () => {
    while (waiting.length && fits(waiting[0].weight)) {
      const w = waiting.shift()!;
      active++;
      used += w.weight;
      w.go();
    }
  };
  return async (weight, fn) => {
    if (waiting.length === 0 && fits(weight)) {
      active++;
      used += weight;
    } else await new Promise<void>((go) => waiting.push({ weight, go }));
    try {
      return await fn();
    } finally {
      active--;
      used -= weight;
      wake();
    }
  };
}

/** A small file read whole, or ChangedError when its length is not `size`. */
async function readWhole(path: string, size: number): Promise<Uint8Array> {
  const f = await Deno.open(path, { read: true });
  try {
    // One byte more than expected shows a file that grew.
    const buf = new Uint8Array(size + 1);
    let got = 0;
    for (;;) {
      const n = await f.read(buf.subarray(got));
      if (n === null) break;
      got += n;
      if (got > size) throw new ChangedError();
    }
    if (got !== size) throw new ChangedError();
    return buf.subarray(0, size);
  } finally {
    f.close();
  }
}

async function sha256Hex(text: string): Promise<string> {
  return toHex(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))),
  );
}

export async function backup(
  session: FileSession,
  localDir: string,
  target: string,
  opts: BackupOptions = {},
): Promise<BackupSummary> {
  const started = performance.now();
  const log = opts.log ?? (() => {});
  const recheck = opts.recheck ?? DEFAULT_RECHECK;
  const excluded = excluder(opts.excludes ?? [], opts.excludeVcs === true);
  const skipped: string[] = [];
  const skip = (path: string, why: string) => {
    const line = `${printable(path)}: ${why}`;
    skipped.push(line);
    log(`skipping ${line}`);
  };

  const rootSt = await Deno.stat(localDir).catch(() => null);
  if (!rootSt?.isDirectory) throw new FilesError(`${localDir} is not a local directory`, true);
  const absRoot = await Deno.realPath(localDir);

  // 1. Scan (lstat only): the totals for the progress display.
  let totalBytes = 0;
  let totalFiles = 0;
  const scan = async (path: string, rel: string): Promise<LocalNode[]> => {
    const names: string[] = [];
    try {
      for await (const d of Deno.readDir(path)) names.push(d.name);
    } catch (e) {
      skip(path, `cannot list: ${(e as Error).message}`);
      return [];
    }
    names.sort();
    const out: LocalNode[] = [];
    for (const raw of names) {
      const full = `${path}/${raw}`;
      const r = rel === "" ? raw : `${rel}/${raw}`;
      if (excluded(raw, r)) continue;
      let name: string;
      try {
        name = normalizeName(raw);
      } catch {
        skip(full, "name not allowed on the grid");
        continue;
      }
      // Synchronous: a few microseconds each, where an async op pays a thread-pool round trip
      // (an unchanged backup is one lstat and one database look-up per file).
      let st: Deno.FileInfo;
      try {
        st = Deno.lstatSync(full);
      } catch (e) {
        skip(full, `cannot stat: ${(e as Error).message}`);
        continue;
      }
      if (st.isSymlink) {
        skip(full, "symbolic link");
        continue;
      }
      if (!st.isFile && !st.isDirectory) {
        skip(full, "special file");
        continue;
      }
      const node: LocalNode = { name, path: full, rel: r, st };
      if (st.isDirectory) node.children = await scan(full, r);
      else {
        totalFiles++;
        totalBytes += st.size;
      }
      out.push(node);
    }
    return out;
  };
  const tree = await scan(absRoot, "");

  const grid = await session.grid();
  const node = session.node;
  const { k, n, happy } = node.config.shares;
  const secret = await convergenceSecret(node);
  const db = await BackupDb.open(`${node.dir}/private/backupdb.sqlite`);
  const sum: BackupSummary = {
    archive: "",
    filesUploaded: 0,
    filesReused: 0,
    directoriesCreated: 0,
    directoriesReused: 0,
    bytesUploaded: 0,
    rechecked: 0,
    recheckFailed: 0,
    skipped,
    seconds: 0,
  };
  let doneBytes = 0;
  let doneFiles = 0;
  let last = 0;
  const report = (done: boolean) => {
    const t = performance.now();
    if (!opts.progress || (!done && t - last < 200)) return;
    last = t;
    opts.progress({ files: doneFiles, totalFiles, bytes: doneBytes, totalBytes, done });
  };
  const advance = (bytes: number) => {
    doneBytes += bytes;
    report(false);
  };
  const uploads = limiter(UPLOADS, UPLOAD_BUDGET);
  const nowSec = () => Math.floor(Date.now() / 1000);

  const fileCap = async (f: LocalNode): Promise<string | null> => {
    const st = f.st;
    const key = `${absRoot}/${f.rel}`;
    const row = db.getFile(key);
    if (
      row && row.size === st.size && row.mtime === secs(st.mtime) &&
      row.ctime === secs(st.ctime) && row.ino === (st.ino ?? 0)
    ) {
      let ok = true;
      if (Math.random() < recheck) {
        sum.rechecked++;
        const c = await grid.checkImmutable(row.cap).catch(() => null);
        ok = c !== null && c.healthy;
        if (!ok) {
          sum.recheckFailed++;
          log(`${printable(f.path)}: its shares were found damaged; uploading it again`);
          db.forgetFile(key);
        }
      }
      if (ok) {
        sum.filesReused++;
        advance(st.size);
        return row.cap;
      }
    }
    const small = st.size <= IN_MEMORY;
    if (!small) {
      try {
        const f0 = await Deno.open(f.path, { read: true });
        f0.close();
      } catch (e) {
        skip(f.path, `unreadable: ${(e as Error).message}`);
        return null;
      }
    }
    let cap: string;
    let sent = 0;
    const weight = Math.min(UPLOAD_MAX_WEIGHT, Math.max(UPLOAD_MIN_WEIGHT, st.size));
    try {
      const r = await uploads(
        weight,
        async () =>
          grid.uploadImmutable(
            small ? await readWhole(f.path, st.size) : checkedSource(f.path, st.size),
            {
              k,
              n,
              happy,
              convergenceSecret: secret,
              onProgress: (d) => {
                // Convergent uploads may read twice; count the bytes once.
                const inc = Math.max(0, Math.min(d, st.size) - sent);
                sent += inc;
                advance(inc);
              },
            },
          ),
      );
      cap = r.cap;
    } catch (e) {
      if (e instanceof ChangedError) {
        skip(f.path, "changed while it was being read (not stored)");
        return null;
      }
      if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotFound) {
        skip(f.path, `unreadable: ${(e as Error).message}`);
        return null;
      }
      throw e;
    } finally {
      advance(st.size - sent);
    }
    const after = await Deno.lstat(f.path).catch(() => null);
    if (
      !after || after.size !== st.size || secs(after.mtime) !== secs(st.mtime) ||
      secs(after.ctime) !== secs(st.ctime)
    ) {
      skip(f.path, "changed while it was being read (not stored)");
      return null;
    }
    sum.filesUploaded++;
    sum.bytesUploaded += st.size;
    db.putFile({
      path: key,
      size: st.size,
      mtime: secs(st.mtime),
      ctime: secs(st.ctime),
      ino: st.ino ?? 0,
      hash: toHex(capStorageIndexSync(parseCap(cap))),
      cap,
      checked: nowSec(),
    });
    return cap;
  };

  /** Build (or reuse) the snapshot of a directory; returns its readcap. */
  const dirCap = async (kids: LocalNode[]): Promise<string> => {
    const made = await mapLimit(kids, PARALLEL, async (kid): Promise<DirEntry | null> => {
      let cap: string | null;
      if (kid.children) cap = await dirCap(kid.children);
      else {
        cap = await fileCap(kid);
        doneFiles++;
        report(false);
      }
      if (cap === null) return null;
      const metadata: Record<string, unknown> = {
        ctime: Math.floor(secs(kid.st.ctime)),
        mtime: Math.floor(secs(kid.st.mtime)),
      };
      if (!kid.children) metadata.size = kid.st.size;
      return { name: kid.name, readcap: cap, metadata };
    });
    const entries = made.filter((e): e is DirEntry => e !== null);
    const hash = await sha256Hex(
      JSON.stringify(entries.map((e) => [e.name, e.readcap, e.metadata])),
    );
    const known = db.getDir(hash);
    if (known) {
      let ok = true;
      if (Math.random() < recheck) {
        sum.rechecked++;
        const c = await grid.checkMutable(known).catch(() => null);
        ok = c !== null && c.recoverable;
        if (!ok) {
          sum.recheckFailed++;
          db.forgetDir(hash);
        }
      }
      if (ok) {
        sum.directoriesReused++;
        return known;
      }
    }
    const writecap = await grid.createDirectory(entries);
    const readcap = formatCap(await readcapOf(parseCap(writecap)));
    db.putDir(hash, readcap, nowSec());
    sum.directoriesCreated++;
    return readcap;
  };

  try {
    const rootCap = await dirCap(tree);
    report(true);
    // 2. Link the archive, then Latest: an interruption before this leaves Latest as it was.
    const sep = target.endsWith(":") || target.endsWith("/") ? "" : "/";
    await session.mkdir(target, { parents: true });
    const archives = await session.mkdir(`${target}${sep}Archives`, { parents: true });
    const targetCap = (await session.resolve(target)).cap;
    let stamp = utcStamp(opts.now?.() ?? new Date());
    const existing = new Set((await grid.listDirectory(archives)).entries.map((e) => e.name));
    for (let i = 2; existing.has(stamp); i++) {
      stamp = `${utcStamp(opts.now?.() ?? new Date())}.${i}`;
    }
    await grid.setEntry(archives, stamp, rootCap, { noReplace: true });
    await grid.setEntry(targetCap, "Latest", rootCap);
    sum.archive = stamp;
  } finally {
    db.close();
  }
  sum.seconds = (performance.now() - started) / 1000;
  return sum;
}
