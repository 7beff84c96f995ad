/**
 * `shoal client cp [-r]` (docs/client-commands.md §3): files and directory trees between this
 * computer and the grid, either way, or within the grid (files are linked again, directories
 * rebuilt). On a terminal a whole copy shows one progress display with its total files and
 * bytes, counted before the first byte moves.
 */
import { mapLimit } from "../../grid/mod.ts";
import { dirEntry } from "../../fs/mod.ts";
import { isDirCap } from "../../crypto/mod.ts";
import { displayPath, FilesError, looksLikeGridPath, parseGridPath } from "./paths.ts";
import {
  type CopyStats,
  type FileSession,
  type Resolved,
  sizeMeta,
  storageIndexOf,
} from "./files.ts";
import {
  aggregateProgress,
  basename,
  fileSource,
  joinLocal,
  localTotals,
  lstatOrNull,
  printable,
  statOrNull,
} from "./local.ts";
import { downloadTo, gridName, uploadImmutable } from "./transfer.ts";

const PARALLEL_FILES = 4;

/** A copy source: a local file/directory or a grid object. */
interface SrcItem {
  name: string | null;
  dir: boolean;
  size: number | null;
  label: string;
  children(): Promise<SrcItem[]>;
  /** A file's cap on the grid (uploading it if local). */
  toCap(): Promise<string>;
}

type Source = { text: string; grid: boolean };

const cycle = (r: Resolved) =>
  new FilesError(`${r.display} contains itself (a directory cycle); cannot copy it recursively`);

class Copy {
  /** Directory listings, kept from the walk that counted the copy's total. */
  readonly #listings = new Map<string, Promise<Resolved[]>>();

  constructor(readonly s: FileSession, readonly recursive: boolean) {}

  #children(r: Resolved): Promise<Resolved[]> {
    let l = this.#listings.get(r.cap);
    if (!l) {
      l = this.s.children(r);
      this.#listings.set(r.cap, l);
    }
    return l;
  }

  // ---- grid -> local ----

  /** Files and bytes below grid object `r` (what a copy to this computer will write). */
  async totals(r: Resolved, plan: { files: number; bytes: number }, ancestors = new Set<string>()) {
    if (!isDirCap(r.parsed)) {
      plan.files++;
      plan.bytes += this.s.knownSize(r) ?? 0;
      return;
    }
    const si = storageIndexOf(r);
    if (!this.recursive || ancestors.has(si)) return; // the copy itself will say so
    const inner = new Set(ancestors).add(si);
    await mapLimit(await this.#children(r), PARALLEL_FILES, (c) => this.totals(c, plan, inner));
  }

  async toLocal(r: Resolved, path: string, ancestors: Set<string>): Promise<void> {
    if (!isDirCap(r.parsed)) {
      await downloadTo(this.s, r, path);
      return;
    }
    if (!this.recursive) {
      throw new FilesError(`${r.display} is a directory: use 'cp -r' to copy it`);
    }
    const si = storageIndexOf(r);
    if (ancestors.has(si)) throw cycle(r);
    const inner = new Set(ancestors).add(si);
    const st = await lstatOrNull(path);
    if (st && !st.isDirectory) throw new FilesError(`${path} exists and is not a directory`);
    if (!st) {
      await Deno.mkdir(path);
      this.s.stats.directories++;
    }
    // Entry names are validated by the directory decoder: no "/", ".", ".." or control characters.
    await mapLimit(await this.#children(r), PARALLEL_FILES, async (c) => {
      await this.toLocal(c, joinLocal(path, c.name), inner);
    });
  }

  // ---- local or grid -> grid ----

  localItem(path: string, name: string | null, st: Deno.FileInfo): SrcItem {
    return {
      name,
      dir: st.isDirectory,
      size: st.isFile ? st.size : null,
      label: path,
      children: async () => {
        const out: SrcItem[] = [];
        const names: string[] = [];
        for await (const d of Deno.readDir(path)) names.push(d.name);
        names.sort();
        for (const n of names) {
          const full = joinLocal(path, n);
          const cst = await Deno.lstat(full);
          if (cst.isSymlink || (!cst.isFile && !cst.isDirectory)) {
            this.s.opts.log?.(`skipping ${full}: not a regular file or directory`);
            continue;
          }
          let name: string;
          try {
            name = gridName(n);
          } catch (e) {
            if (!(e instanceof FilesError)) throw e;
            const why = `${printable(full)}: ${e.message}`;
            this.s.opts.log?.(`skipping ${why}`);
            this.s.stats.skipped.push(why);
            continue;
          }
          out.push(this.localItem(full, name, cst));
        }
        return out;
      },
      toCap: () => uploadImmutable(this.s, fileSource(path, st.size), basename(path), true),
    };
  }

  gridItem(r: Resolved, name: string | null, ancestors: Set<string>): SrcItem {
    const si = storageIndexOf(r);
    return {
      name,
      dir: isDirCap(r.parsed),
      size: this.s.knownSize(r),
      label: r.display,
      children: async () => {
        if (ancestors.has(si)) throw cycle(r);
        const inner = new Set(ancestors).add(si);
        return (await this.#children(r)).map((c) => this.gridItem(c, c.name, inner));
      },
      toCap: () => {
        this.s.stats.files++;
        return Promise.resolve(r.cap);
      },
    };
  }

  /** A new directory holding `item`'s tree (files uploaded or linked); returns its writecap. */
  async #buildTree(item: SrcItem): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const kids = await item.children();
    const entries = await mapLimit(kids, PARALLEL_FILES, async (k) => {
      const cap = k.dir ? await this.#buildTree(k) : await k.toCap();
      return await dirEntry(k.name!, cap, { ctime: now, mtime: now, ...sizeMeta(k.size) });
    });
    const grid = await this.s.grid();
    const cap = await this.s.guard(() => grid.createDirectory(entries));
    this.s.stats.directories++;
    return cap;
  }

  /** Copy `item`'s children into the existing directory `dir`, merging subdirectories. */
  async #mergeInto(dir: Resolved, item: SrcItem): Promise<void> {
    this.s.requireWritableDir(dir);
    const existing = await this.s.children(dir);
    const kids = await item.children();
    const made = await mapLimit(kids, PARALLEL_FILES, async (k) => {
      const there = existing.find((x) => x.name === k.name) ?? null;
      if (k.dir && there) {
        if (!isDirCap(there.parsed)) {
          throw new FilesError(`${there.display} exists and is not a directory`);
        }
        await this.#mergeInto(there, k);
        return null;
      }
      if (!k.dir && there && isDirCap(there.parsed)) {
        throw new FilesError(`${there.display} is a directory; cannot replace it with a file`);
      }
      const cap = k.dir ? await this.#buildTree(k) : await k.toCap();
      return { name: k.name!, cap, metadata: sizeMeta(k.size) };
    });
    const fresh = made.filter((x) => x !== null);
    if (fresh.length) await this.s.linkAll(dir, fresh);
  }

  async toGrid(item: SrcItem, dir: Resolved, name: string | null): Promise<void> {
    this.s.requireWritableDir(dir);
    if (item.dir && !this.recursive) {
      throw new FilesError(`${item.label} is a directory: use 'cp -r' to copy it`);
    }
    if (name === null) {
      if (!item.dir) {
        throw new FilesError(`${dir.display} is a directory: give the name to create inside it`);
      }
      await this.#mergeInto(dir, item);
      return;
    }
    const there = await this.s.child(dir, name);
    if (item.dir) {
      if (there) {
        if (!isDirCap(there.parsed)) {
          throw new FilesError(`${there.display} exists and is not a directory`);
        }
        await this.#mergeInto(there, item);
        return;
      }
      await this.s.link(dir, name, await this.#buildTree(item));
      return;
    }
    if (there && isDirCap(there.parsed)) {
      throw new FilesError(`${there.display} is a directory; cannot replace it with a file`);
    }
    await this.s.link(dir, name, await item.toCap(), sizeMeta(item.size));
  }
}

async function copyToGrid(c: Copy, srcs: Source[], dest: string): Promise<void> {
  const s = c.s;
  const dp = parseGridPath(dest);
  for (const x of srcs) if (x.grid) parseGridPath(x.text); // syntax errors before any work
  const existing = await s.stat(dp);
  const destIsDir = existing !== null && isDirCap(existing.parsed);
  if ((srcs.length > 1 || dp.trailingSlash) && !destIsDir) {
    throw new FilesError(
      existing
        ? `not a directory: ${existing.display} is a file`
        : `not found: ${displayPath(dp)} (it must be an existing directory)`,
    );
  }
  for (const x of srcs) {
    let item: SrcItem;
    if (x.grid) {
      const sp = parseGridPath(x.text);
      item = c.gridItem(await s.resolve(sp), sp.segments.at(-1) ?? null, new Set());
    } else {
      const st = await statOrNull(x.text);
      if (!st) throw new FilesError(`no such local file or directory: ${x.text}`);
      const b = basename(x.text);
      item = c.localItem(x.text, b === "" || b === "." || b === ".." ? null : gridName(b), st);
    }
    if (destIsDir) await c.toGrid(item, existing!, item.name);
    else {
      const { dir, name } = await s.writableParent(dp, "DEST");
      await c.toGrid(item, dir, name);
    }
  }
}

/** Where each grid source goes on this computer, resolved before anything is written. */
async function localTargets(
  c: Copy,
  srcs: Source[],
  dest: string,
): Promise<{ r: Resolved; target: string }[]> {
  if (srcs.some((x) => !x.grid)) {
    throw new FilesError(
      "cp copies between this computer and the grid: write grid paths as ALIAS:path or CAP/path " +
        "(a local name containing ':' can be written ./name)",
      true,
    );
  }
  const paths = srcs.map((x) => parseGridPath(x.text));
  const st = await statOrNull(dest);
  const destIsDir = st?.isDirectory ?? false;
  if (srcs.length > 1 && !destIsDir) {
    throw new FilesError(
      `${dest} must be an existing local directory when copying several sources`,
    );
  }
  if (st && !destIsDir && dest.endsWith("/")) throw new FilesError(`${dest} is not a directory`);
  const out = [];
  for (const sp of paths) {
    const r = await c.s.resolve(sp);
    const name = sp.segments.at(-1) ?? null;
    let target = dest;
    if (destIsDir) {
      if (name === null) {
        if (!isDirCap(r.parsed)) {
          throw new FilesError(`${dest} is a directory: give a file name to write`);
        }
        if (!c.recursive) {
          throw new FilesError(`${r.display} is a directory: use 'cp -r' to copy it`);
        }
        target = dest; // the directory's contents go into DEST
      } else {
        target = joinLocal(dest, name);
      }
    }
    out.push({ r, target });
  }
  return out;
}

/**
 * Copy files and directories between this computer and the grid (either way), or within the
 * grid. With a progress display (a terminal), the whole copy gets one, with its total.
 */
export async function cp(
  s: FileSession,
  sources: string[],
  dest: string,
  opts: { recursive?: boolean } = {},
): Promise<CopyStats> {
  const c = new Copy(s, opts.recursive ?? false);
  const srcs = sources.map((x) => ({ text: x, grid: looksLikeGridPath(x) }));
  const perFile = s.opts.progress;
  const toGrid = looksLikeGridPath(dest);
  const targets = toGrid ? null : await localTargets(c, srcs, dest);
  let whole;
  if (perFile && (targets || srcs.every((x) => !x.grid))) {
    const plan = { files: 0, bytes: 0 };
    if (targets) {
      for (const t of targets) await c.totals(t.r, plan);
    } else {
      for (const x of srcs) await localTotals(x.text, c.recursive, plan);
    }
    whole = perFile(`${plan.files} file(s)`, plan.bytes);
    if (whole) s.opts.progress = aggregateProgress(whole);
  }
  try {
    if (targets) { for (const t of targets) await c.toLocal(t.r, t.target, new Set()); }
    else await copyToGrid(c, srcs, dest);
    return s.stats;
  } finally {
    s.opts.progress = perFile;
    whole?.finish();
  }
}
