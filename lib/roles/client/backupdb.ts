/**
 * The backup database (docs/backup.md §2): what `shoal client backup` already uploaded, so an
 * unchanged file is never read again. SQLite via node:sqlite, in NODE/private/backupdb.sqlite
 * (it holds caps: mode 0600).
 */
import { DatabaseSync } from "node:sqlite";

export interface FileRow {
  path: string;
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
  /** Hex storage index of the cap (a convergent content hash of the plaintext). */
  hash: string;
  cap: string;
  checked: number;
}

export class BackupDb {
  readonly #db: DatabaseSync;
  /** Prepared once: a backup makes one look-up per file. */
  readonly #getFile;
  readonly #putFile;
  readonly #getDir;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    this.#getFile = db.prepare("SELECT * FROM files WHERE path = ?");
    this.#putFile = db.prepare(
      "INSERT OR REPLACE INTO files (path, size, mtime, ctime, ino, hash, cap, checked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.#getDir = db.prepare("SELECT readcap FROM dirs WHERE hash = ?");
  }

  static async open(path: string): Promise<BackupDb> {
    const db = new DatabaseSync(path);
    try {
      await Deno.chmod(path, 0o600);
    } catch { /* not fatal: the directory is private already */ }
    db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      CREATE TABLE IF NOT EXISTS files (
        path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime REAL NOT NULL, ctime REAL NOT NULL,
        ino INTEGER NOT NULL, hash TEXT NOT NULL, cap TEXT NOT NULL, checked INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS dirs (
        hash TEXT PRIMARY KEY, readcap TEXT NOT NULL, checked INTEGER NOT NULL);
    `);
    return new BackupDb(db);
  }

  getFile(path: string): FileRow | undefined {
    return this.#getFile.get(path) as
      | FileRow
      | undefined;
  }

  putFile(r: FileRow): void {
    this.#putFile.run(r.path, r.size, r.mtime, r.ctime, r.ino, r.hash, r.cap, r.checked);
  }

  forgetFile(path: string): void {
    this.#db.prepare("DELETE FROM files WHERE path = ?").run(path);
  }

  getDir(hash: string): string | undefined {
    const r = this.#getDir.get(hash) as
      | { readcap: string }
      | undefined;
    return r?.readcap;
  }

  putDir(hash: string, readcap: string, checked: number): void {
    this.#db.prepare("INSERT OR REPLACE INTO dirs (hash, readcap, checked) VALUES (?, ?, ?)")
      .run(hash, readcap, checked);
  }

  forgetDir(hash: string): void {
    this.#db.prepare("DELETE FROM dirs WHERE hash = ?").run(hash);
  }

  close(): void {
    this.#db.close();
  }
}
