/**
 * Shared shoal.toml handling for every role's configuration parser: syntax
 * errors with line and column, and unknown or misplaced keys named with their
 * line. A parser reads its tables through `trackReads`; every key it reads is
 * a known key (reading with a default counts), so a parser that learns a new
 * key needs no separate list. `unreadKeys` then names what it never read.
 */
import { parse } from "smol-toml";

type Table = Record<string, unknown>;

function isTable(x: unknown): x is Table {
  return x !== null && typeof x === "object" && !Array.isArray(x) && !(x instanceof Date);
}

/**
 * Parse TOML text; a syntax error becomes `makeError("FILE:LINE:COLUMN: ...")` (the first
 * line of the parser's message, without the code excerpt).
 */
export function parseTomlText(
  text: string,
  file: string,
  makeError: (message: string) => Error,
): Table {
  try {
    return parse(text) as Table;
  } catch (e) {
    const err = e as Error & { line?: number; column?: number };
    const first = err.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
    const where = typeof err.line === "number" ? `:${err.line}:${err.column ?? 1}` : "";
    throw makeError(`${file}${where}: not valid TOML: ${first}`);
  }
}

/** Wrap a parsed document so every key read through it is recorded in `used` ("table.key"). */
export function trackReads(doc: Table, used: Set<string>, prefix = ""): Table {
  return new Proxy(doc, {
    get(target, key, receiver) {
      if (typeof key !== "string") return Reflect.get(target, key, receiver);
      const path = prefix ? `${prefix}.${key}` : key;
      used.add(path);
      const v = Reflect.get(target, key, receiver);
      return isTable(v) ? trackReads(v, used, path) : v;
    },
  });
}

/** The 1-based line where `key` is set inside `[table]` (table "" is the top level), if found. */
export function keyLine(text: string, table: string, key: string): number | null {
  let current = "";
  const lines = text.split("\n");
  const esc = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const keyRe = new RegExp(`^\\s*(?:${esc}|"${esc}"|'${esc}')\\s*=`);
  for (let i = 0; i < lines.length; i++) {
    const h = /^\s*\[\s*([^\[\]]+?)\s*\]/.exec(lines[i]);
    if (h && !/^\s*\[\[/.test(lines[i])) {
      current = h[1].replace(/\s+/g, "").replace(/"/g, "");
      continue;
    }
    if (current === table && keyRe.test(lines[i])) return i + 1;
  }
  return null;
}

export interface UnknownKey {
  /** Dotted path, e.g. "storage.reserved_spcae". */
  path: string;
  line: number | null;
  /** The tables where a key of this name is known, e.g. ["shares"] for a misplaced "k". */
  belongsIn: string[];
}

/** Keys present in `doc` that the parser never read (after parsing: `used` is complete). */
export function unreadKeys(doc: Table, used: Set<string>, text: string, prefix = ""): UnknownKey[] {
  const out: UnknownKey[] = [];
  for (const [k, v] of Object.entries(doc)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (!used.has(path)) {
      const belongsIn = [...used]
        .filter((u) => u.endsWith(`.${k}`) && u !== path)
        .map((u) => u.slice(0, -(k.length + 1)));
      const line = isTable(v) ? tableLine(text, path) : keyLine(text, prefix, k);
      out.push({ path, line, belongsIn });
    } else if (isTable(v)) {
      out.push(...unreadKeys(v, used, text, path));
    }
  }
  return out;
}

/** The 1-based line of the header `[path]`, if present. */
export function tableLine(text: string, path: string): number | null {
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const h = /^\s*\[\s*([^\[\]]+?)\s*\]/.exec(lines[i]);
    if (h && h[1].replace(/\s+/g, "").replace(/"/g, "") === path) return i + 1;
  }
  return null;
}

/** "FILE:LINE: unknown key 'k' in [web] (it belongs in [shares])". */
export function describeUnknownKey(file: string, u: UnknownKey): string {
  const dot = u.path.lastIndexOf(".");
  const table = dot < 0 ? "" : u.path.slice(0, dot);
  const name = dot < 0 ? u.path : u.path.slice(dot + 1);
  const where = u.line === null ? "" : `:${u.line}`;
  const what = table === ""
    ? `unknown table or key '${name}'`
    : `unknown key '${name}' in [${table}]`;
  const hint = u.belongsIn.length
    ? ` (it belongs in ${
      u.belongsIn.map((t) => t === "" ? "the top level" : `[${t}]`).join(" or ")
    })`
    : "";
  return `${file}${where}: ${what}${hint}`;
}
