/**
 * The record of this node's unlinked uploads (docs/leases-and-upkeep.md §2):
 * every object uploaded without being linked into a directory (`put` without
 * DEST, `put --mutable` without DEST, the web gateway's `PUT /uri`), so that
 * `shoal client run` keeps it alive although no alias reaches it.
 * `shoal client forget CAP` drops one.
 *
 *   C/private/uploads.jsonl   one JSON object per line: {"cap", "name", "time"} (0600)
 *
 * Lines are appended (O_APPEND: concurrent writers each add whole lines) and
 * fsynced; `forget` rewrites the file atomically. The file holds caps: it is
 * private like the aliases.
 */
import { capStorageIndexSync, parseCap } from "../../crypto/mod.ts";
import { toHex } from "../../codec/mod.ts";
import { readTextOrNull, writePrivate } from "../nodefs.ts";

export const UPLOADS_FILE = "private/uploads.jsonl";

export interface UploadRecord {
  cap: string;
  /** The local file name it came from, or null (stdin, the web gateway). */
  name: string | null;
  /** Seconds since the epoch. */
  time: number;
}

/** Every recorded upload, oldest first, each storage index once (malformed lines skipped). */
export async function loadUploads(dir: string): Promise<UploadRecord[]> {
  const text = await readTextOrNull(`${dir}/${UPLOADS_FILE}`);
  if (text === null) return [];
  const seen = new Set<string>();
  const out: UploadRecord[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as UploadRecord;
      if (typeof r.cap !== "string") continue;
      const key = toHex(capStorageIndexSync(parseCap(r.cap)));
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        cap: r.cap,
        name: typeof r.name === "string" ? r.name : null,
        time: typeof r.time === "number" ? r.time : 0,
      });
    } catch { /* a torn or foreign line: ignore it */ }
  }
  return out;
}

/** Append one upload to the record. */
export async function recordUpload(dir: string, cap: string, name: string | null): Promise<void> {
  const line = JSON.stringify({ cap, name, time: Math.floor(Date.now() / 1000) }) + "\n";
  const f = await Deno.open(`${dir}/${UPLOADS_FILE}`, {
    append: true,
    create: true,
    mode: 0o600,
  });
  try {
    const bytes = new TextEncoder().encode(line);
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
}

/**
 * Drop every record of the object `cap` names (any cap of it: writecap,
 * readcap or verify cap). Returns how many records were dropped.
 */
export async function forgetUpload(dir: string, cap: string): Promise<number> {
  const key = toHex(capStorageIndexSync(parseCap(cap)));
  const text = await readTextOrNull(`${dir}/${UPLOADS_FILE}`);
  if (text === null) return 0;
  let dropped = 0;
  const keep = text.split("\n").filter((line) => {
    if (!line.trim()) return false;
    try {
      const r = JSON.parse(line) as UploadRecord;
      if (toHex(capStorageIndexSync(parseCap(r.cap))) === key) {
        dropped++;
        return false;
      }
    } catch { /* keep what we cannot read */ }
    return true;
  });
  if (dropped) await writePrivate(`${dir}/${UPLOADS_FILE}`, keep.map((l) => l + "\n").join(""));
  return dropped;
}

/** A printable label for an unlinked upload (never its cap). */
export function uploadLabel(r: UploadRecord): string {
  const when = new Date(r.time * 1000).toISOString().slice(0, 16).replace("T", " ");
  return `(upload${r.name ? ` ${r.name}` : ""} at ${when})`;
}
