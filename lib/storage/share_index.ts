/**
 * The share store's in-memory index of complete shares, per namespace, for
 * `POST /batch-list` (docs/storage-protocol.md §6.6). Without it every
 * listed storage index cost two directory reads (one per namespace, most of
 * them of a directory that does not exist), which made the servers' batch-list
 * answers most of a deep check's time (docs/performance.md §8).
 *
 * The index is kept per prefix directory (`<kind>/<first two characters>/`,
 * 1024 per namespace) and filled lazily: a lookup in a prefix not yet indexed
 * reads that whole prefix (one directory read for the prefix, one per storage
 * index in it) while the request's budget lasts, else reads the one storage
 * index's directory as before. A request's budget is twice its storage
 * indexes, in directory reads, so no request costs much more than it did
 * without the index; the index is complete after a few listings.
 *
 * The store's own changes (a finished upload, a read-test-write, garbage
 * collection) call `refresh` after they are on disk, which re-reads that one
 * directory, so the index is exact for them. A change made behind the store's
 * back is seen once the prefix is indexed again: each prefix is re-read at
 * most RESCAN_MS (a day) after it was indexed (and at restart, the index being in
 * memory only). Memory is bounded: past `maxEntries` storage indexes no new
 * prefix is indexed and lookups go to the disk.
 */

/** Most storage indexes (both namespaces) held in the index by default (~100 B each). */
export const DEFAULT_MAX_INDEXED = 1_000_000;
/** An indexed prefix is read from disk again after this long (changes behind the store's back). */
export const RESCAN_MS = 24 * 3600 * 1000;

export type IndexKind = "immutable" | "mutable";

const SI_NAME = /^[a-z2-7]{26}$/;

interface Prefix {
  at: number;
  shares: Map<string, readonly number[]>;
}

/** Reads of the disk a request may still make to fill the index (directory reads). */
export interface IndexBudget {
  reads: number;
  /** The index's clock read once per request (`ShareIndex.budget`). */
  now: number;
}

export class ShareIndex {
  readonly maxEntries: number;
  #root: string;
  #listShares: (dir: string) => number[];
  #now: () => number;
  #prefixes: Record<IndexKind, Map<string, Prefix>> = {
    immutable: new Map(),
    mutable: new Map(),
  };
  #entries = 0;

  constructor(opts: {
    root: string;
    /** Sorted share numbers in a storage-index directory ([] when it does not exist). */
    listShares: (dir: string) => number[];
    maxEntries?: number;
    now?: () => number;
  }) {
    this.#root = opts.root;
    this.#listShares = opts.listShares;
    this.maxEntries = opts.maxEntries ?? DEFAULT_MAX_INDEXED;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** The budget of a request asking for `count` storage indexes: two directory reads each. */
  budget(count: number): IndexBudget {
    return { reads: 2 * count, now: this.#now() };
  }

  /** Storage indexes held in the index (both namespaces). */
  get size(): number {
    return this.#entries;
  }

  /** Prefixes indexed, per namespace (for tests and diagnostics). */
  indexedPrefixes(kind: IndexKind): number {
    return this.#prefixes[kind].size;
  }

  #dir(kind: IndexKind, si: string): string {
    return `${this.#root}/${kind}/${si.slice(0, 2)}/${si}`;
  }

  /** Read the prefix directory of `kind` and every storage index in it; returns the reads made. */
  #scan(kind: IndexKind, prefix: string): number {
    const old = this.#prefixes[kind].get(prefix);
    if (old) {
      this.#entries -= old.shares.size;
      this.#prefixes[kind].delete(prefix);
    }
    const dir = `${this.#root}/${kind}/${prefix}`;
    const shares = new Map<string, readonly number[]>();
    let reads = 1;
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (!e.isDirectory || !SI_NAME.test(e.name)) continue;
        const list = this.#listShares(`${dir}/${e.name}`);
        reads++;
        if (list.length) shares.set(e.name, list);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    this.#prefixes[kind].set(prefix, { at: this.#now(), shares });
    this.#entries += shares.size;
    return reads;
  }

  /**
   * The complete shares of storage index `si` (base32) in `kind`, sorted.
   * Spends `budget.reads` on indexing the prefix when it is not indexed (or due
   * for a re-read); without budget (or past maxEntries) reads just `si`'s directory.
   */
  lookup(kind: IndexKind, si: string, budget: IndexBudget): readonly number[] {
    const prefix = si.slice(0, 2);
    const p = this.#prefixes[kind].get(prefix);
    if (p && budget.now - p.at < RESCAN_MS) return p.shares.get(si) ?? [];
    if (budget.reads > 0 && (p || this.#entries < this.maxEntries)) {
      budget.reads -= this.#scan(kind, prefix);
      return this.#prefixes[kind].get(prefix)!.shares.get(si) ?? [];
    }
    budget.reads--;
    return this.#listShares(this.#dir(kind, si));
  }

  /** The store changed `si` in `kind` (on disk already): re-read its directory if indexed. */
  refresh(kind: IndexKind, si: string): void {
    const p = this.#prefixes[kind].get(si.slice(0, 2));
    if (!p) return; // read when the prefix is indexed
    const had = p.shares.delete(si);
    const list = this.#listShares(this.#dir(kind, si));
    if (list.length) p.shares.set(si, list);
    this.#entries += (list.length ? 1 : 0) - (had ? 1 : 0);
  }
}
