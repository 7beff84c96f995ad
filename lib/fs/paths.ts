/** Paths of the file-system API: arrays of NFC-normalized entry names below a root cap. */
import { DirectoryError, normalizeName } from "../grid/mod.ts";
import { FsError } from "./errors.ts";

export type FsPath = readonly string[];

/** Normalize one name; FsError("invalid") says what is wrong. */
export function fsName(name: string): string {
  try {
    return normalizeName(name);
  } catch (e) {
    if (e instanceof DirectoryError) throw new FsError("invalid", e.message);
    throw e;
  }
}

/**
 * Split a `/`-separated path (`a/b`, `/a/b/`) into names. Empty steps and `.` are skipped;
 * `..` is refused (a path never leaves its root).
 */
export function parseFsPath(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split("/")) {
    if (raw === "" || raw === ".") continue;
    if (raw === "..") throw new FsError("invalid", "'..' is not allowed in a path");
    out.push(fsName(raw));
  }
  return out;
}

/** A printable path (names only, never a cap): `/a/b`. */
export function showPath(p: FsPath): string {
  return "/" + p.join("/");
}

/** Whether `inner` is `outer` or below it. */
export function isWithin(inner: FsPath, outer: FsPath): boolean {
  return outer.length <= inner.length && outer.every((n, i) => inner[i] === n);
}
