/**
 * The restic backend's link journal (docs/restic.md §3): a POST is answered once its object is
 * stored on the grid and a record "link PATH → cap" is on local disk (fsync); the directory
 * publish that links it happens afterwards, in the background, many records per publish. A
 * DELETE is recorded the same way. Until a record is applied, lookups, reads and listings see it
 * (the overlay); after a crash the next `serve restic` of the repository replays the journal
 * before it answers anything, so nothing acknowledged is lost.
 *
 * Files, in NODE/private/restic-journal/ (0700; records hold caps):
 *   ID.journal   one JSON record per line, appended with one fsync per batch of requests
 *   ID.owner     "PID STARTTIME" of the process that owns the journal
 * ID is derived from the repository directory's readcap. A second process serving the same
 * repository while the owner lives gets no journal (it links before answering, as before).
 */
import { toHex, utf8 } from "../../codec/mod.ts";
import { sha256 } from "../../crypto/mod.ts";
import { sleep } from "../../sleep.ts";

export interface JournalEntry {
  op: "link" | "unlink";
  path: string[];
  cap?: string;
  size?: number;
}

/** Applies a batch of entries (each path at most once); throws when any failed (all are retried). */
export type ApplyBatch = (batch: JournalEntry[]) => Promise<void>;

const keyOf = (path: readonly string[]) => path.join("/");

function isEntry(x: unknown): x is JournalEntry {
  const e = x as JournalEntry;
  return typeof e === "object" && e !== null && (e.op === "link" || e.op === "unlink") &&
    Array.isArray(e.path) && e.path.every((p) => typeof p === "string") &&
    (e.op === "unlink" || (typeof e.cap === "string" && typeof e.size === "number"));
}

/** The start time of process `pid` (field 22 of /proc/PID/stat), or null when it is not running. */
function startTime(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

async function fsyncDir(path: string): Promise<void> {
  const d = await Deno.open(path, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

export function journalId(repoReadcap: string): string {
  return toHex(sha256(utf8("shoal-restic-journal:v1:"), utf8(repoReadcap))).slice(0, 32);
}

export class LinkJournal {
  /** Durable entries not yet applied, newest per path. */
  readonly #pending = new Map<string, JournalEntry>();
  #file: Deno.FsFile;
  /** File operations run one after another. */
  #io: Promise<void> = Promise.resolve();
  #queue: { line: string; entry: JournalEntry; done: () => void; fail: (e: unknown) => void }[] =
    [];
  #flushing: Promise<void> | null = null;
  #closed = false;

  private constructor(
    readonly dir: string,
    readonly id: string,
    file: Deno.FsFile,
    readonly apply: ApplyBatch,
    readonly log: (line: string) => void,
  ) {
    this.#file = file;
  }

  get #path(): string {
    return `${this.dir}/${this.id}.journal`;
  }

  /**
   * Take the journal of repository `id` in `dir`: replay what a previous process left, then
   * serve. Null when another live process owns it (or this system has no /proc to tell).
   */
  static async open(
    dir: string,
    id: string,
    apply: ApplyBatch,
    log: (line: string) => void,
  ): Promise<LinkJournal | null> {
    const me = startTime(Deno.pid);
    if (me === null) return null;
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.chmod(dir, 0o700);
    const owner = `${dir}/${id}.owner`;
    const held = await Deno.readTextFile(owner).catch(() => null);
    if (held !== null) {
      const [pid, start] = held.trim().split(" ");
      if (Number(pid) !== Deno.pid && startTime(Number(pid)) === start) {
        log("another 'serve restic' serves this repository: linking every object before answering");
        return null;
      }
      await Deno.remove(owner).catch(() => {});
    }
    try {
      const f = await Deno.open(owner, { write: true, createNew: true, mode: 0o600 });
      await f.write(utf8(`${Deno.pid} ${me}\n`));
      await f.sync();
      f.close();
      await fsyncDir(dir);
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) return null; // another process just took it
      throw e;
    }
    const path = `${dir}/${id}.journal`;
    const text = await Deno.readTextFile(path).catch(() => "");
    const file = await Deno.open(path, { create: true, append: true, mode: 0o600 });
    const j = new LinkJournal(dir, id, file, apply, log);
    let replayed = 0;
    for (const line of text.split("\n")) {
      // A torn last line was never acknowledged (its fsync had not returned): skip it.
      let e: unknown;
      try {
        e = JSON.parse(line);
      } catch {
        continue;
      }
      if (!isEntry(e)) continue;
      j.#pending.set(keyOf(e.path), e);
      replayed++;
    }
    if (replayed) {
      log(`replaying ${replayed} journalled change(s) of this repository`);
      await j.#compact();
      j.#kick();
    }
    return j;
  }

  /** The newest unapplied entry for `path`. */
  get(path: readonly string[]): JournalEntry | undefined {
    return this.#pending.get(keyOf(path));
  }

  /** Unapplied entries directly inside directory `dir`. */
  inDir(dir: readonly string[]): JournalEntry[] {
    const d = keyOf(dir);
    return [...this.#pending.values()].filter((e) => keyOf(e.path.slice(0, -1)) === d);
  }

  /** Unapplied entries anywhere below `dir`. */
  below(dir: readonly string[]): JournalEntry[] {
    const d = keyOf(dir) + "/";
    return [...this.#pending.values()].filter((e) => keyOf(e.path).startsWith(d));
  }

  /**
   * A listing below `dir`: what `read` finds on the grid, with the unapplied entries laid over
   * it (an unlink hides the item, a link replaces or adds one). The entries are taken _before_
   * the read starts: one applied and forgotten while the grid is read may be missing from what
   * the read returns (it can see the directory as it was before the publish), so it must still
   * count. An entry recorded during the read is concurrent with it, either answer is right.
   */
  async overlay<T>(
    dir: readonly string[],
    read: () => Promise<T[]>,
    pathOf: (item: T) => readonly string[],
  ): Promise<{ items: T[]; links: JournalEntry[] }> {
    const pending = this.below(dir);
    let items = await read();
    if (pending.length === 0) return { items, links: [] };
    const shadowed = new Set(pending.map((e) => keyOf(e.path)));
    items = items.filter((x) => !shadowed.has(keyOf(pathOf(x))));
    return { items, links: pending.filter((e) => e.op === "link") };
  }

  /** Record `entry` durably (fsync) and queue it for the grid. */
  record(entry: JournalEntry): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("the journal is closed"));
    const line = JSON.stringify(entry) + "\n";
    const done = new Promise<void>((resolve, reject) => {
      this.#queue.push({ line, entry, done: resolve, fail: reject });
    });
    if (this.#queue.length === 1) this.#io = this.#io.then(() => this.#writeQueued());
    return done;
  }

  /** Write every queued record with one write and one fsync (group commit). */
  async #writeQueued(): Promise<void> {
    const batch = this.#queue.splice(0, this.#queue.length);
    if (batch.length === 0) return;
    try {
      const bytes = utf8(batch.map((b) => b.line).join(""));
      let off = 0;
      while (off < bytes.length) off += await this.#file.write(bytes.subarray(off));
      await this.#file.sync();
    } catch (e) {
      for (const b of batch) b.fail(e);
      return;
    }
    for (const b of batch) this.#pending.set(keyOf(b.entry.path), b.entry);
    for (const b of batch) b.done();
    this.#kick();
  }

  /** Rewrite the journal with only the entries still pending (atomically, durably). */
  #compact(): Promise<void> {
    const run = async () => {
      const tmp = `${this.#path}.tmp`;
      const lines = [...this.#pending.values()].map((e) => JSON.stringify(e) + "\n").join("");
      const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
      try {
        const bytes = utf8(lines);
        let off = 0;
        while (off < bytes.length) off += await f.write(bytes.subarray(off));
        await f.sync();
      } finally {
        f.close();
      }
      await Deno.rename(tmp, this.#path);
      await fsyncDir(this.dir);
      this.#file.close();
      this.#file = await Deno.open(this.#path, { append: true });
    };
    const p = this.#io.then(run);
    this.#io = p.catch((e) => this.log(`restic journal: compaction failed: ${e}`));
    return p;
  }

  #kick(): void {
    if (this.#flushing || this.#pending.size === 0) return;
    this.#flushing = this.#flushLoop().finally(() => (this.#flushing = null));
  }

  async #flushLoop(): Promise<void> {
    let backoff = 500;
    while (this.#pending.size > 0) {
      const batch = [...this.#pending.values()];
      try {
        await this.apply(batch);
      } catch (e) {
        this.log(`restic journal: linking ${batch.length} object(s) failed, retrying: ${e}`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 30_000);
        continue;
      }
      backoff = 500;
      for (const e of batch) {
        if (this.#pending.get(keyOf(e.path)) === e) this.#pending.delete(keyOf(e.path));
      }
      await this.#compact().catch(() => {});
    }
  }

  /** Resolves once every entry recorded so far is on the grid. */
  async flush(): Promise<void> {
    while (this.#flushing || this.#queue.length) {
      await this.#io;
      if (this.#flushing) await this.#flushing;
    }
  }

  /**
   * Apply everything (waiting at most `timeoutMs`), then remove the journal; it is kept, for the
   * next `serve restic` to replay, when something could not be linked in time.
   */
  async close(timeoutMs = 30_000): Promise<void> {
    this.#closed = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.flush(),
      new Promise<void>((r) => (timer = setTimeout(r, timeoutMs))),
    ]);
    clearTimeout(timer);
    await this.#io;
    this.#file.close();
    if (this.#pending.size === 0) await Deno.remove(this.#path).catch(() => {});
    else this.log(`restic journal: ${this.#pending.size} change(s) kept for the next start`);
    await Deno.remove(`${this.dir}/${this.id}.owner`).catch(() => {});
  }
}
