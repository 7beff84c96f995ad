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
