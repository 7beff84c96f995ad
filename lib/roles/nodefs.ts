/**
 * Node-directory file helpers shared by every role: atomic, durable writes
 * (temp file, fsync, rename, fsync the directory) and private files (0600).
 */
import { base32Decode, base32Encode } from "../codec/mod.ts";
import { randomBytes } from "../crypto/mod.ts";

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

export async function fsyncDir(path: string): Promise<void> {
  const d = await Deno.open(path, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/** Write a file atomically and durably; `mode` applies from creation on. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode });
  try {
    await Deno.chmod(tmp, mode);
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } catch (e) {
    f.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  f.close();
  await Deno.rename(tmp, path);
  await fsyncDir(parentOf(path));
}

/** Write a secret file (mode 0600). */
export function writePrivate(path: string, data: string | Uint8Array): Promise<void> {
  return writeFileAtomic(path, data, 0o600);
}

/** Create `dir/private` with mode 0700. */
export async function makePrivateDir(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/private`, { recursive: true, mode: 0o700 });
  await Deno.chmod(`${dir}/private`, 0o700);
}

/** Read a text file, or null if missing. */
export async function readTextOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Read a 32-byte base32 secret from `path`, creating it at random if missing. */
export async function loadOrCreateSecret(path: string): Promise<Uint8Array> {
  const text = await readTextOrNull(path);
  if (text !== null) {
    const b = base32Decode(text.trim());
    if (b.length !== 32) throw new Error(`${path} does not hold a 32-byte secret`);
    return b;
  }
  // Create it only if absent, atomically: write a temp file, then hard-link it into place
  // (link fails if another process created the secret first; then use theirs).
  const secret = randomBytes(32);
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await writePrivate(tmp, base32Encode(secret) + "\n");
  try {
    await Deno.link(tmp, path);
    await fsyncDir(parentOf(path));
    return secret;
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    return await loadOrCreateSecret(path);
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

export function normalizeDir(dir: string): string {
  return dir.replace(/\/+$/, "") || "/";
}

export type NodeRole = "client" | "storage" | "operator";

/** What a path holds, as far as node directories go. Reads only; never writes. */
export type DirKind =
  | { kind: "node"; role: NodeRole }
  | { kind: "missing" }
  | { kind: "file" }
  | { kind: "quickstart" }
  | { kind: "other" };

/**
 * Identify a node directory by the files only its role creates: an operator holds
 * private/gsd-writecap, a storage node tls-cert.pem or private/swissnum, a client node
 * shoal.toml (and private/introduction-text). A quickstart directory holds client/,
 * operator/ and storage/ node directories.
 */
export async function detectDirKind(dirArg: string): Promise<DirKind> {
  const dir = normalizeDir(dirArg);
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { kind: "missing" };
    if (e instanceof Deno.errors.NotADirectory) return { kind: "file" };
    throw e;
  }
  if (!st.isDirectory) return { kind: "file" };
  if (await exists(`${dir}/private/gsd-writecap`)) return { kind: "node", role: "operator" };
  if (await exists(`${dir}/private/swissnum`) || await exists(`${dir}/tls-cert.pem`)) {
    return { kind: "node", role: "storage" };
  }
  if (await exists(`${dir}/shoal.toml`)) return { kind: "node", role: "client" };
  if (await exists(`${dir}/client/shoal.toml`) && await exists(`${dir}/operator`)) {
    return { kind: "quickstart" };
  }
  return { kind: "other" };
}

/** The default node directory: $SHOAL_DIR, else ~/.shoal. */
export function defaultNodeDir(): { dir: string; from: "SHOAL_DIR" | "default" } {
  const env = Deno.env.get("SHOAL_DIR");
  if (env) return { dir: env, from: "SHOAL_DIR" };
  const home = Deno.env.get("HOME") ?? ".";
  return { dir: `${home}/.shoal`, from: "default" };
}
