/**
 * Directory contents: the plaintext of a directory's mutable file.
 * docs/directories.md is the normative description. Pure: no I/O.
 *
 * CBOR map { v: 1, meta: {...}, entries: [ { name, ro, rw, meta } ... ] }, entries sorted by
 * name (UTF-16 code unit order of the NFC-normalized name), where
 *   name  text, NFC-normalized, 1..1024 UTF-8 bytes, no "/", no control characters,
 *   ro    text, the child's read-only cap (a readcap; never a writecap)
 *   rw    bytes or null: salt(16) || AES-256-CTR(key, zero IV, UTF-8 writecap),
 *         key = taggedHash(dirEntryKey, directory writekey, salt)
 *   meta  map of metadata (at least ctime and mtime, seconds since the epoch)
 * The top-level `meta` map holds directory-wide metadata (the grid service
 * directory keeps its issue time and expiry there); it may be empty.
 * Only writecap holders can decrypt `rw`, so a readcap holder sees read-only
 * caps only (transitive read-only).
 */
import { decodeCbor, encodeCbor, fromUtf8, utf8 } from "../codec/mod.ts";
import { aesCtrSync, type Cap, parseCap, randomBytes, taggedHash, TAGS } from "../crypto/mod.ts";

export const DIRECTORY_FORMAT_VERSION = 1;
const ZERO_IV = new Uint8Array(16);
export const MAX_NAME_BYTES = 1024;

export class DirectoryError extends Error {
  override name = "DirectoryError";
}

export interface DirEntry {
  name: string;
  /** The child's read-only cap string. */
  readcap: string;
  /** The child's writecap string, when the directory was opened with its writecap and the child has one. */
  writecap?: string;
  metadata: Record<string, unknown>;
}

/** Normalize and validate an entry name; throws DirectoryError saying what is wrong. */
export function normalizeName(name: string): string {
  if (typeof name !== "string") throw new DirectoryError("entry name must be text");
  const n = name.normalize("NFC");
  if (n.length === 0) throw new DirectoryError("entry name is empty");
  if (n.includes("/")) throw new DirectoryError("entry name contains '/'");
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(n)) {
    throw new DirectoryError("entry name contains a control character");
  }
  if (n === "." || n === "..") throw new DirectoryError(`entry name '${n}' is reserved`);
  if (utf8(n).length > MAX_NAME_BYTES) {
    throw new DirectoryError(`entry name is longer than ${MAX_NAME_BYTES} bytes`);
  }
  return n;
}

/**
 * Whether `text` is, or dresses up as, a Shoal writecap: "shoal:" and a kind
 * in a write family (`XXX-W`, any version), in any case, with or without
 * surrounding whitespace. Such text must never sit where a readcap belongs.
 */
function looksLikeWritecap(text: string): boolean {
  return /^\s*shoal:[a-z]+-w[0-9]*(:|\s*$)/i.test(text);
}

/** The cap `text` parses to, or null when it is not a (known) Shoal cap. */
function tryParseCap(text: string): Cap | null {
  try {
    return parseCap(text);
  } catch {
    return null;
  }
}

/**
 * Refuse an entry whose read-only cap is write material (docs/security.md
 * §2.15): a readcap holder would otherwise be handed a writecap.
 */
function checkReadcap(name: string, ro: string): void {
  if (looksLikeWritecap(ro) || tryParseCap(ro)?.kind.endsWith("-write")) {
    throw new DirectoryError(
      `directory entry '${name}': its read-only cap is a writecap; refusing the directory ` +
        "(it was written by a broken or hostile client)",
    );
  }
}

/**
 * With the writekey: a decrypted Shoal cap in `rw` must be a writecap of the
 * same type as the entry's readcap (MUT-W with MUT-R, DIR-W with DIR-R).
 */
function checkWritecapPair(name: string, ro: string, rw: string): void {
  const w = tryParseCap(rw);
  if (w === null) {
    if (rw.trimStart().toLowerCase().startsWith("shoal:")) {
      throw new DirectoryError(`directory entry '${name}': its writecap is not a valid cap`);
    }
    return;
  }
  const r = tryParseCap(ro);
  if (!w.kind.endsWith("-write") || (r && r.kind !== w.kind.replace("-write", "-read"))) {
    throw new DirectoryError(
      `directory entry '${name}': its writecap (${w.kind}) does not match its read-only cap` +
        (r ? ` (${r.kind})` : ""),
    );
  }
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function entryKey(writekey: Uint8Array, salt: Uint8Array): Uint8Array {
  return taggedHash(TAGS.dirEntryKey, writekey, salt);
}

/** A directory's whole contents. */
export interface DirectoryDoc {
  entries: DirEntry[];
  /** Directory-wide metadata. */
  meta: Record<string, unknown>;
}

/** Encode entries; `writekey` is required when any entry carries a writecap. */
export function encodeDirectory(
  entries: DirEntry[],
  writekey: Uint8Array | null,
  meta: Record<string, unknown> = {},
  random: (n: number) => Uint8Array = randomBytes,
): Uint8Array {
  const sorted = [...entries].map((e) => ({ ...e, name: normalizeName(e.name) })).sort((a, b) =>
    compareNames(a.name, b.name)
  );
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].name === sorted[i - 1].name) {
      throw new DirectoryError(`duplicate entry name '${sorted[i].name}'`);
    }
  }
  const out = [];
  for (const e of sorted) {
    checkReadcap(e.name, e.readcap);
    let rw: Uint8Array | null = null;
    if (e.writecap !== undefined) {
      if (!writekey) {
        throw new DirectoryError("cannot store a child writecap without the directory's writekey");
      }
      const salt = random(16);
      const ct = aesCtrSync(entryKey(writekey, salt), ZERO_IV, utf8(e.writecap));
      rw = new Uint8Array(16 + ct.length);
      rw.set(salt, 0);
      rw.set(ct, 16);
    }
    out.push({ name: e.name, ro: e.readcap, rw, meta: e.metadata });
  }
  return encodeCbor({ v: DIRECTORY_FORMAT_VERSION, meta, entries: out });
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

/**
 * Decode directory contents. With the writekey, child writecaps are decrypted;
 * without it they are dropped (a readcap holder never sees them).
 */
export function decodeDirectory(
  bytes: Uint8Array,
  writekey: Uint8Array | null,
): DirEntry[] {
  return decodeDirectoryDoc(bytes, writekey).entries;
}

/** Decode entries and directory-wide metadata. */
export function decodeDirectoryDoc(
  bytes: Uint8Array,
  writekey: Uint8Array | null,
): DirectoryDoc {
  let doc: unknown;
  try {
    doc = decodeCbor(bytes);
  } catch (e) {
    throw new DirectoryError(`directory contents are not valid CBOR: ${(e as Error).message}`);
  }
  if (
    !isRecord(doc) || doc.v !== DIRECTORY_FORMAT_VERSION || !Array.isArray(doc.entries) ||
    !isRecord(doc.meta)
  ) {
    throw new DirectoryError(`not a version ${DIRECTORY_FORMAT_VERSION} directory`);
  }
  const entries: DirEntry[] = [];
  let prev: string | null = null;
  for (const raw of doc.entries) {
    if (
      !isRecord(raw) || typeof raw.name !== "string" || typeof raw.ro !== "string" ||
      !isRecord(raw.meta)
    ) {
      throw new DirectoryError("malformed directory entry");
    }
    const name = normalizeName(raw.name);
    if (name !== raw.name) throw new DirectoryError("directory entry name is not NFC-normalized");
    if (prev !== null && compareNames(prev, name) >= 0) {
      throw new DirectoryError("directory entries are not sorted and unique");
    }
    prev = name;
    checkReadcap(name, raw.ro);
    const entry: DirEntry = { name, readcap: raw.ro, metadata: raw.meta };
    if (raw.rw !== null && raw.rw !== undefined) {
      if (!(raw.rw instanceof Uint8Array) || raw.rw.length < 17) {
        throw new DirectoryError("malformed encrypted writecap");
      }
      if (writekey) {
        const salt = raw.rw.subarray(0, 16);
        const pt = aesCtrSync(entryKey(writekey, salt), ZERO_IV, raw.rw.subarray(16));
        try {
          entry.writecap = fromUtf8(pt);
        } catch {
          throw new DirectoryError("encrypted writecap does not decrypt to text (wrong key?)");
        }
        checkWritecapPair(name, raw.ro, entry.writecap);
      }
    }
    entries.push(entry);
  }
  return { entries, meta: doc.meta };
}
