/**
 * WebDAV write locks (RFC 4918 §6-7), kept in memory by the serving process: they vanish when
 * it stops, which is allowed (a lock is advisory and has a timeout anyway). docs/webdav.md §4.
 */
import { isWithin } from "../../fs/mod.ts";

export type LockScope = "exclusive" | "shared";

export interface Lock {
  token: string;
  /** The lock root. */
  path: string[];
  depth: "0" | "infinity";
  scope: LockScope;
  /** The client's `<D:owner>` contents, as XML text. */
  owner: string;
  /** Seconds granted. */
  timeout: number;
  /** When it lapses (ms since the epoch). */
  expires: number;
}

export const DEFAULT_LOCK_TIMEOUT = 3600;
export const MAX_LOCK_TIMEOUT = 86400;
/** At most this many live locks per server (a client cannot fill memory with them). */
export const MAX_LOCKS = 10_000;

/** Parse a `Timeout` header: the first `Second-N` or `Infinite`, clamped to the maximum. */
export function parseTimeout(header: string | null): number {
  if (!header) return DEFAULT_LOCK_TIMEOUT;
  for (const part of header.split(",")) {
    const t = part.trim();
    if (/^infinite$/i.test(t)) return MAX_LOCK_TIMEOUT;
    const m = /^Second-(\d+)$/i.exec(t);
    if (m) return Math.max(1, Math.min(MAX_LOCK_TIMEOUT, Number(m[1])));
  }
  return DEFAULT_LOCK_TIMEOUT;
}

export class LockConflict extends Error {
  override name = "LockConflict";
}

export class LockTable {
  readonly #locks = new Map<string, Lock>();

  constructor(readonly clock: () => number = Date.now) {}

  #prune(): void {
    const t = this.clock();
    for (const [k, l] of this.#locks) if (l.expires <= t) this.#locks.delete(k);
  }

  get(token: string): Lock | undefined {
    this.#prune();
    return this.#locks.get(token);
  }

  /** Locks that apply to `path`: on it, or depth-infinity on an ancestor. */
  covering(path: string[]): Lock[] {
    this.#prune();
    return [...this.#locks.values()].filter((l) =>
      isWithin(path, l.path) && (l.depth === "infinity" || l.path.length === path.length)
    );
  }

  /** Locks rooted at `path` or below it. */
  within(path: string[]): Lock[] {
    this.#prune();
    return [...this.#locks.values()].filter((l) => isWithin(l.path, path));
  }

  /** Take a new lock; LockConflict when an incompatible one exists. */
  create(
    path: string[],
    scope: LockScope,
    depth: "0" | "infinity",
    owner: string,
    timeout: number,
  ): Lock {
    const others = [...this.covering(path), ...(depth === "infinity" ? this.within(path) : [])];
    if (others.some((l) => l.scope === "exclusive" || scope === "exclusive")) {
      throw new LockConflict("the resource is already locked");
    }
    if (this.#locks.size >= MAX_LOCKS) throw new LockConflict("too many locks are held");
    const lock: Lock = {
      token: `opaquelocktoken:${crypto.randomUUID()}`,
      path: [...path],
      depth,
      scope,
      owner,
      timeout,
      expires: this.clock() + timeout * 1000,
    };
    this.#locks.set(lock.token, lock);
    return lock;
  }

  refresh(lock: Lock, timeout: number): void {
    lock.timeout = timeout;
    lock.expires = this.clock() + timeout * 1000;
  }

  remove(token: string): boolean {
    return this.#locks.delete(token);
  }

  /** Drop every lock at or below `path` (the resources went away). */
  removeWithin(path: string[]): void {
    for (const l of this.within(path)) this.#locks.delete(l.token);
  }
}

// ---------------------------------------------------------------- the If header (§10.4)

export interface Condition {
  not: boolean;
  token?: string;
  etag?: string;
}

export interface IfList {
  /** The tagged resource (a URL or path as sent), or null for the request URI. */
  resource: string | null;
  conditions: Condition[];
}

/** Parse an `If` header; null when it is malformed (the caller answers 400). */
export function parseIf(header: string): IfList[] | null {
  const lists: IfList[] = [];
  let i = 0;
  let tag: string | null = null;
  const s = header;
  const ws = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  ws();
  while (i < s.length) {
    if (s[i] === "<") {
      const end = s.indexOf(">", i);
      if (end < 0) return null;
      tag = s.slice(i + 1, end);
      i = end + 1;
      ws();
      continue;
    }
    if (s[i] !== "(") return null;
    i++;
    const conditions: Condition[] = [];
    for (;;) {
      ws();
      if (i >= s.length) return null;
      if (s[i] === ")") {
        i++;
        break;
      }
      let not = false;
      if (/^not\b/i.test(s.slice(i, i + 4)) || s.slice(i, i + 3).toLowerCase() === "not") {
        not = true;
        i += 3;
        ws();
      }
      if (s[i] === "<") {
        const end = s.indexOf(">", i);
        if (end < 0) return null;
        conditions.push({ not, token: s.slice(i + 1, end) });
        i = end + 1;
      } else if (s[i] === "[") {
        const end = s.indexOf("]", i);
        if (end < 0) return null;
        conditions.push({ not, etag: s.slice(i + 1, end).trim() });
        i = end + 1;
      } else return null;
    }
    if (!conditions.length) return null;
    lists.push({ resource: tag, conditions });
    ws();
  }
  return lists.length ? lists : null;
}
