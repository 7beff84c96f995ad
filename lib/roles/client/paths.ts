/**
 * Grid paths on the command line (docs/client-commands.md §2).
 *
 *   ALIAS:sub/dir/file   an alias (C/private/aliases.json) and a path below it
 *   CAP/sub/dir/file     a cap ("shoal:...") and a path below it
 *
 * Parsing is syntax only (no I/O). Errors never repeat the argument: it may be
 * a mistyped cap.
 */
import { type Cap, CAP_PREFIX, CapError, capKindName, parseCap } from "../../crypto/mod.ts";
import { DirectoryError, normalizeName } from "../../grid/mod.ts";

/** Bad input on the command line (exit code 2) or a failed operation (exit code 1). */
export class FilesError extends Error {
  override name = "FilesError";
  constructor(message: string, readonly usage = false) {
    super(message);
  }
}

export const ALIAS_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ALIAS_PREFIX_RE = /^([A-Za-z0-9][A-Za-z0-9._-]{0,63}):/;

export type PathRoot = { type: "alias"; name: string } | { type: "cap"; cap: string; parsed: Cap };

export interface GridPath {
  root: PathRoot;
  /** Entry names below the root, NFC-normalized and validated. */
  segments: string[];
  /** The argument ended in "/": it names a directory. */
  trailingSlash: boolean;
}

/** Check an alias name; FilesError (usage) says what is allowed. */
export function validateAliasName(name: string): string {
  if (!ALIAS_NAME_RE.test(name)) {
    throw new FilesError(
      "bad alias name: use 1-64 characters from A-Z a-z 0-9 . _ - starting with a letter or digit",
      true,
    );
  }
  if (name.toLowerCase() === "shoal") {
    throw new FilesError("bad alias name: 'shoal' is reserved (caps start with 'shoal:')", true);
  }
  return name;
}

/** Whether an argument is written as a grid path (as opposed to a local file name, for `cp`). */
export function looksLikeGridPath(arg: string): boolean {
  return arg.startsWith(CAP_PREFIX) || ALIAS_PREFIX_RE.test(arg);
}

function parseSegments(rest: string): { segments: string[]; trailingSlash: boolean } {
  const trailingSlash = rest.endsWith("/");
  const segments: string[] = [];
  for (const raw of rest.split("/")) {
    if (raw === "" || raw === ".") continue;
    if (raw === "..") throw new FilesError("'..' is not allowed in a grid path", true);
    try {
      segments.push(normalizeName(raw));
    } catch (e) {
      if (e instanceof DirectoryError) {
        throw new FilesError(`bad name in grid path: ${e.message}`, true);
      }
      throw e;
    }
  }
  return { segments, trailingSlash };
}

/** Parse `ALIAS:path` or `CAP/path`; FilesError (usage) for anything else. */
export function parseGridPath(arg: string): GridPath {
  if (arg.startsWith(CAP_PREFIX)) {
    const slash = arg.indexOf("/");
    const capText = slash < 0 ? arg : arg.slice(0, slash);
    let parsed: Cap;
    try {
      parsed = parseCap(capText);
    } catch (e) {
      if (e instanceof CapError) throw new FilesError(`malformed cap: ${e.message}`, true);
      throw e;
    }
    const { segments, trailingSlash } = parseSegments(slash < 0 ? "" : arg.slice(slash + 1));
    return { root: { type: "cap", cap: capText, parsed }, segments, trailingSlash };
  }
  const m = ALIAS_PREFIX_RE.exec(arg);
  if (!m) {
    throw new FilesError(
      "not a grid path: write ALIAS:path/to/entry (see 'shoal client alias list') or a cap, " +
        "optionally followed by /path",
      true,
    );
  }
  const { segments, trailingSlash } = parseSegments(arg.slice(m[0].length));
  return { root: { type: "alias", name: m[1] }, segments, trailingSlash };
}

/** A printable form of a path that never shows a cap: `docs:a/b` or `<DIR-W1 cap>/a/b`. */
export function displayPath(p: GridPath, segments = p.segments): string {
  const root = p.root.type === "alias" ? `${p.root.name}:` : `<${capKindName(p.root.parsed)} cap>`;
  if (segments.length === 0) return root;
  return p.root.type === "alias" ? `${root}${segments.join("/")}` : `${root}/${segments.join("/")}`;
}

/** The path of the parent directory and the last name; FilesError when the path has no name. */
export function splitLast(p: GridPath, what: string): { parent: GridPath; name: string } {
  if (p.segments.length === 0) {
    throw new FilesError(
      `${what} must name an entry inside a directory (e.g. ALIAS:name), not a directory root`,
      true,
    );
  }
  return {
    parent: { root: p.root, segments: p.segments.slice(0, -1), trailingSlash: true },
    name: p.segments[p.segments.length - 1],
  };
}

/** The same path with one more name. */
export function child(p: GridPath, name: string): GridPath {
  return { root: p.root, segments: [...p.segments, name], trailingSlash: false };
}
