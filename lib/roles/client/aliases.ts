/**
 * Aliases: short names for directory caps, kept in C/private/aliases.json
 * (mode 0600: they usually hold writecaps). docs/client-commands.md §3.
 *
 *   { "version": 1, "aliases": { "NAME": "shoal:DIR-W1:...", ... } }
 */
import { CapError, formatCap, isDirCap, parseCap } from "../../crypto/mod.ts";
import { readTextOrNull, writePrivate } from "../nodefs.ts";
import { FilesError, validateAliasName } from "./paths.ts";

export const ALIASES_FILE = "private/aliases.json";
export const ALIASES_VERSION = 1;

function file(dir: string): string {
  return `${dir}/${ALIASES_FILE}`;
}

/** Every alias, by name (sorted). A damaged file is an error, never silently emptied. */
export async function loadAliases(dir: string): Promise<Map<string, string>> {
  const text = await readTextOrNull(file(dir));
  if (text === null) return new Map();
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new FilesError(`${file(dir)} is not valid JSON; fix or remove it`);
  }
  const d = doc as { version?: unknown; aliases?: unknown };
  if (
    typeof d !== "object" || d === null || d.version !== ALIASES_VERSION ||
    typeof d.aliases !== "object" || d.aliases === null
  ) {
    throw new FilesError(
      `${file(dir)} is not a version ${ALIASES_VERSION} alias file; fix or remove it`,
    );
  }
  const out = new Map<string, string>();
  for (const [name, cap] of Object.entries(d.aliases as Record<string, unknown>)) {
    if (typeof cap !== "string") {
      throw new FilesError(`${file(dir)}: alias '${name}' does not hold a cap`);
    }
    out.set(name, cap);
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

async function save(dir: string, aliases: Map<string, string>): Promise<void> {
  const sorted = Object.fromEntries([...aliases].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  await writePrivate(
    file(dir),
    JSON.stringify({ version: ALIASES_VERSION, aliases: sorted }, null, 2) + "\n",
  );
}

/** Check that `cap` is a directory cap and return its canonical form. */
export function directoryCapForAlias(cap: string): string {
  let parsed;
  try {
    parsed = parseCap(cap);
  } catch (e) {
    if (e instanceof CapError) throw new FilesError(`malformed cap: ${e.message}`, true);
    throw e;
  }
  if (!isDirCap(parsed) || parsed.kind === "dir-verify") {
    throw new FilesError("an alias must name a directory: give a DIR-W1 or DIR-R1 cap", true);
  }
  return formatCap(parsed);
}

/** Add (or, with `replace`, change) an alias. */
export async function addAlias(
  dir: string,
  name: string,
  cap: string,
  opts: { replace?: boolean } = {},
): Promise<void> {
  validateAliasName(name);
  const canonical = directoryCapForAlias(cap);
  const aliases = await loadAliases(dir);
  if (aliases.has(name) && !opts.replace) {
    throw new FilesError(
      `alias '${name}' already exists; remove it first ('shoal client alias remove ${name}')`,
    );
  }
  aliases.set(name, canonical);
  await save(dir, aliases);
}

export async function removeAlias(dir: string, name: string): Promise<void> {
  const aliases = await loadAliases(dir);
  if (!aliases.delete(name)) {
    throw new FilesError(`no alias named '${name}'; 'shoal client alias list' shows them`);
  }
  await save(dir, aliases);
}
